"""The receivers quart_app ships, one module per concern, and the one place that connects them.

Order matters for custom signals (they run in connection order): the cache is made true
before anything else hears of an insert.
"""

from __future__ import annotations

from quart import Quart

from . import audit, counters, invalidation, render_log


def connect_receivers(app: Quart) -> None:
    render_log.connect(app)
    invalidation.connect(app)
    audit.connect(app)
    counters.connect(app)
