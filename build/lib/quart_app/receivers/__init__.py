"""The receivers quart_app ships, one module per concern, and the one place that connects them.

Each is switched on or off by the `RECEIVERS` table of the settings. Cache invalidation is not
one of them: it belongs to the info API (`quart_app.info.invalidation`), is never switched off,
and is connected before these, so the cache is true before anything here hears of a change.
"""

from __future__ import annotations

from quart import Quart

from . import (
    audit,
    counters,
    error_log,
    flash_log,
    notify,
    render_log,
    signal_log,
    visits,
)

SWITCHABLE = {
    "render_log": render_log.connect,
    "visits": visits.connect,
    "error_log": error_log.connect,
    "flash_log": flash_log.connect,
    "audit": audit.connect,
    "insert_counter": counters.connect,
    "notify": notify.connect,
}


def connect_receivers(app: Quart) -> None:
    switches = app.config["RECEIVERS"]
    for name, connect in SWITCHABLE.items():
        if switches[name]:
            connect(app)
    if app.config["SIGNAL_LOG"]:
        signal_log.connect(app)
