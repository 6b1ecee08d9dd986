"""Inserting an info row and announcing it: the tutorial's signal, sent after the commit.

The Flask original calls its "signal" handler before the INSERT even runs. Here
`info_will_insert` goes first, the store commits, then `info_inserted` (whose receivers
invalidate the caches) is awaited before the caller answers, so a client that inserts and
then reads sees its row. A failed insert sends `info_insert_failed` and nothing else.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from quart import Quart

from .db import InfoRow, InfoStore, StoreError
from .dispatch import send
from .signals import info_insert_failed, info_inserted, info_will_insert


async def insert_info(
    app: Quart, store: InfoStore, info_id: int | None, name: str, money: Decimal
) -> InfoRow:
    # Shielded: a client that disconnects must not stop an insert between its commit and
    # the invalidation its receivers owe the cache.
    return await asyncio.shield(_insert_and_announce(app, store, info_id, name, money))


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
