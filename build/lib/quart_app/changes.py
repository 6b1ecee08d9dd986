"""Changing info rows and announcing it: insert, update, delete and bulk insert.

The tutorial's signals, sent after the commit (the Flask original calls its "signal" handler
before the INSERT even runs). Each change sends its `info_will_*` signal first, lets the
store commit, then awaits the receivers of the done signal (cache invalidation first) before
the caller answers, so a client that changes a row and then reads sees its change. A change
that did not happen sends the `*_failed` signal and nothing else.

Every change runs shielded: a client that disconnects must not stop it between its commit
and the invalidation its receivers owe the cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

from quart import Quart

from .db import InfoRow, InfoStore, NoSuchRow, StoreError
from .db.store import NewRow
from .dispatch import send
from .signals import (
    info_bulk_inserted,
    info_delete_failed,
    info_deleted,
    info_insert_failed,
    info_inserted,
    info_update_failed,
    info_updated,
    info_will_delete,
    info_will_insert,
    info_will_update,
)


async def insert_info(
    app: Quart, store: InfoStore, info_id: int | None, name: str, money: Decimal
) -> InfoRow:
    return await asyncio.shield(_insert_and_announce(app, store, info_id, name, money))


async def update_info(
    app: Quart, store: InfoStore, info_id: int, name: str | None, money: Decimal | None, *,
    expected: InfoRow | None = None,
) -> InfoRow:
    """Change a row (None keeps a field), only while it equals `expected` if given.

    Raises `NoSuchRow`, `RowChanged` (`expected` is outdated) or the store's errors.
    """
    return await asyncio.shield(
        _update_and_announce(app, store, info_id, name, money, expected))


async def delete_info(
    app: Quart, store: InfoStore, info_id: int, *, expected: InfoRow | None = None
) -> InfoRow:
    """Delete a row, only while it equals `expected` if given; the row as it was."""
    return await asyncio.shield(_delete_and_announce(app, store, info_id, expected))


async def insert_many_info(
    app: Quart, store: InfoStore, rows: Sequence[NewRow]
) -> list[InfoRow | StoreError]:
    """Insert rows in bulk; each row's outcome in order (see `InfoStore.insert_many`).

    Every stored row gets its `info_inserted` (with ``bulk=True``), every refused one its
    `info_insert_failed`; `info_bulk_inserted` comes first, once, for what a batch needs once.
    """
    return await asyncio.shield(_insert_many_and_announce(app, store, rows))


async def _insert_and_announce(
    app: Quart, store: InfoStore, info_id: int | None, name: str, money: Decimal
) -> InfoRow:
    await send(info_will_insert, app, id=info_id, name=name, money=money)
    try:
        row = await store.insert(info_id, name, money)
    except StoreError as error:
        await send(info_insert_failed, app, id=info_id, name=name, money=money, error=error)
        raise
    await send(info_inserted, app, row=row)
    return row


async def _update_and_announce(
    app: Quart, store: InfoStore, info_id: int, name: str | None, money: Decimal | None,
    expected: InfoRow | None,
) -> InfoRow:
    await send(info_will_update, app, id=info_id, name=name, money=money)
    try:
        change = await store.update(info_id, name, money, expected=expected)
        if change is None:
            raise NoSuchRow(info_id)
    except StoreError as error:
        await send(info_update_failed, app, id=info_id, name=name, money=money, error=error)
        raise
    previous, row = change
    await send(info_updated, app, row=row, previous=previous)
    return row


async def _delete_and_announce(
    app: Quart, store: InfoStore, info_id: int, expected: InfoRow | None
) -> InfoRow:
    await send(info_will_delete, app, id=info_id)
    try:
        row = await store.delete(info_id, expected=expected)
        if row is None:
            raise NoSuchRow(info_id)
    except StoreError as error:
        await send(info_delete_failed, app, id=info_id, error=error)
        raise
    await send(info_deleted, app, row=row)
    return row


async def _insert_many_and_announce(
    app: Quart, store: InfoStore, rows: Sequence[NewRow]
) -> list[InfoRow | StoreError]:
    for info_id, name, money in rows:
        await send(info_will_insert, app, id=info_id, name=name, money=money)
    try:
        outcomes = await store.insert_many(rows)
    except StoreError as error:
        for info_id, name, money in rows:
            await send(info_insert_failed, app, id=info_id, name=name, money=money, error=error)
        raise
    stored = [outcome for outcome in outcomes if isinstance(outcome, InfoRow)]
    if stored:
        await send(info_bulk_inserted, app, rows=stored)
    for (info_id, name, money), outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, InfoRow):
            await send(info_inserted, app, row=outcome, bulk=True)
        else:
            await send(info_insert_failed, app, id=info_id, name=name, money=money,
                       error=outcome)
    return outcomes
