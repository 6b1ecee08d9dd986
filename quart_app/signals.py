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

#: Sent by `quart_app.changes.insert_info` before the INSERT runs (Django's pre_save), with
#: ``id`` (None when the store assigns it), ``name`` and ``money`` (Decimal).
info_will_insert = _signals.signal("info-will-insert")

#: Sent by `quart_app.changes.insert_info` after the INSERT has committed, with ``row`` (the
#: stored `InfoRow`), and ``bulk=True`` for a row of a bulk load. Never sent for a failed or
#: rolled-back insert.
info_inserted = _signals.signal("info-inserted")

#: Sent by `quart_app.changes.insert_info` when the INSERT did not commit, with ``id``,
#: ``name``, ``money`` and ``error`` (the exception; nothing was stored).
info_insert_failed = _signals.signal("info-insert-failed")

#: Sent by `quart_app.changes.update_info` before the UPDATE (Django's pre_save), with ``id``,
#: ``name`` and ``money`` (None for a field a PATCH leaves as it is).
info_will_update = _signals.signal("info-will-update")

#: Sent by `quart_app.changes.update_info` after the UPDATE has committed, with ``row`` (the
#: stored `InfoRow`) and ``previous`` (the row it replaced).
info_updated = _signals.signal("info-updated")

#: Sent by `quart_app.changes.update_info` when nothing was updated, with ``id``, ``name``,
#: ``money`` and ``error`` (`NoSuchRow`, `RowChanged` or another `StoreError`).
info_update_failed = _signals.signal("info-update-failed")

#: Sent by `quart_app.changes.delete_info` before the DELETE (Django's pre_delete), with ``id``.
info_will_delete = _signals.signal("info-will-delete")

#: Sent by `quart_app.changes.delete_info` after the DELETE has committed, with ``row`` (the
#: `InfoRow` as it was).
info_deleted = _signals.signal("info-deleted")

#: Sent by `quart_app.changes.delete_info` when nothing was deleted, with ``id`` and ``error``.
info_delete_failed = _signals.signal("info-delete-failed")

#: Sent by `quart_app.changes.insert_many_info` once per bulk load, after its commit and before
#: the ``info_inserted`` of each of its rows (sent with ``bulk=True``), with ``rows`` (the
#: stored `InfoRow`s): what is done once per batch (cache invalidation) listens here.
info_bulk_inserted = _signals.signal("info-bulk-inserted")


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


def _encode_change(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"row": kwargs["row"].to_json(), "previous": kwargs["previous"].to_json()}


def _decode_change(data: dict[str, Any]) -> dict[str, Any]:
    return {**_decode_row({"row": data["row"]}),
            "previous": _decode_row({"row": data["previous"]})["row"]}


#: Signals that, with SIGNALS_BUS_URL set, also reach every other process (quart_app.bus.relay).
BROADCAST: dict[NamedSignal, Broadcast] = {
    info_inserted: Broadcast(_encode_row, _decode_row),
    info_updated: Broadcast(_encode_change, _decode_change),
    info_deleted: Broadcast(_encode_row, _decode_row),
}
