"""Counting committed inserts, updates and deletes in the cache (shared by every worker when
the cache is Redis)."""

from __future__ import annotations

from typing import Any

from quart import Quart

from ..db import InfoRow
from ..dispatch import receiver
from ..extensions import cache
from ..signals import info_bulk_inserted, info_deleted, info_inserted, info_updated

INSERTS_KEY = "stats:info_inserts"
UPDATES_KEY = "stats:info_updates"
DELETES_KEY = "stats:info_deletes"


def connect(app: Quart) -> None:
    # Counted where the change was made: with Redis the counters are shared by every process.
    @receiver(info_inserted, app, dispatch_uid="counters.info_inserted", origin_only=True)
    async def count_insert(sender: Quart, row: InfoRow, bulk: bool = False,
                           **extra: Any) -> None:
        if not bulk:
            await cache.client_for(sender).inc(INSERTS_KEY)

    # A bulk load's rows in one increment, not one round trip per row.
    @receiver(info_bulk_inserted, app, dispatch_uid="counters.info_bulk_inserted",
              origin_only=True)
    async def count_bulk(sender: Quart, rows: list[InfoRow], **extra: Any) -> None:
        await cache.client_for(sender).inc(INSERTS_KEY, len(rows))

    @receiver(info_updated, app, dispatch_uid="counters.info_updated", origin_only=True)
    async def count_update(sender: Quart, **extra: Any) -> None:
        await cache.client_for(sender).inc(UPDATES_KEY)

    @receiver(info_deleted, app, dispatch_uid="counters.info_deleted", origin_only=True)
    async def count_delete(sender: Quart, **extra: Any) -> None:
        await cache.client_for(sender).inc(DELETES_KEY)
