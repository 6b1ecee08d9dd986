"""quart_app's own signals, in one blinker Namespace (Quart's built-in ones are in quart.signals).

Every signal is sent with the app as sender, so a receiver connected for one app never hears
another app's events. Send them with `quart_app.dispatch.send`, which awaits each receiver
(the `receiver` registrations first, in the order connected) and keeps one receiver's failure
from the others and the caller. They are `GuardedSignal`s, so the same holds for receivers
connected with plain blinker (`info_inserted.connect(fn)`) and for a direct `send_async`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from blinker import NamedSignal

from .db import InfoRow
from .dispatch import GuardedNamespace

_signals = GuardedNamespace()

#: Sent by `quart_app.inserts.insert_info` before the INSERT runs (Django's pre_save), with
#: ``id`` (None when the store assigns it), ``name`` and ``money`` (Decimal).
info_will_insert = _signals.signal("info-will-insert")

#: Sent by `quart_app.inserts.insert_info` after the INSERT has committed, with ``row`` (the
#: stored `InfoRow`). Never sent for a failed or rolled-back insert.
info_inserted = _signals.signal("info-inserted")

#: Sent by `quart_app.inserts.insert_info` when the INSERT did not commit, with ``id``,
#: ``name``, ``money`` and ``error`` (the exception; nothing was stored).
info_insert_failed = _signals.signal("info-insert-failed")


@dataclass(frozen=True, slots=True)
class Broadcast:
    """How a signal's keyword arguments cross a process boundary as JSON."""

    encode: Callable[[dict[str, Any]], dict[str, Any]]
    decode: Callable[[dict[str, Any]], dict[str, Any]]


def _encode_row(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"row": kwargs["row"].to_json()}


def _decode_row(data: dict[str, Any]) -> dict[str, Any]:
    row = data["row"]
    return {"row": InfoRow(int(row["id"]), str(row["name"]), Decimal(str(row["money"])))}


#: Signals that, with SIGNALS_BUS_URL set, also reach every other process (quart_app.bus).
BROADCAST: dict[NamedSignal, Broadcast] = {
    info_inserted: Broadcast(_encode_row, _decode_row),
}
