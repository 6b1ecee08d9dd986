"""Keeping the caches true: a change invalidates the pages and the row it affects.

The tutorial's banner example (delete a cache when a table changes), done as awaited
receivers so a change's response is sent only once its reads are fresh: an insert, an
update and a delete each invalidate the list and the row's URL; a bulk load invalidates the
list and every row's URL once for the whole batch (`info_bulk_inserted`), so its rows'
`info_inserted` (sent with ``bulk=True``) need nothing more here.

A change made in another process (delivered over the signal bus) needs the same work only
where caches are per process: a shared Redis cache was invalidated by the process that made
the change, and so were the local tiers in front of it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from quart import Quart

from ..cache.views import delete_cached
from ..db import InfoRow
from ..dispatch import is_remote_delivery, receiver
from ..extensions import cache
from ..signals import info_bulk_inserted, info_deleted, info_inserted, info_updated
from .routes import list_info, read_info


def _done_elsewhere(sender: Quart) -> bool:
    return is_remote_delivery() and cache.client_for(sender).is_shared


def connect(app: Quart) -> None:
    @receiver(info_inserted, app, dispatch_uid="invalidation.info_inserted")
    async def invalidate(sender: Quart, row: InfoRow, bulk: bool = False, **extra: Any) -> None:
        if bulk or _done_elsewhere(sender):
            return
        await forget_cached_reads(sender, row.id)

    @receiver(info_updated, app, dispatch_uid="invalidation.info_updated")
    async def invalidate_update(sender: Quart, row: InfoRow, **extra: Any) -> None:
        if not _done_elsewhere(sender):
            await forget_cached_reads(sender, row.id)

    @receiver(info_deleted, app, dispatch_uid="invalidation.info_deleted")
    async def invalidate_delete(sender: Quart, row: InfoRow, **extra: Any) -> None:
        if not _done_elsewhere(sender):
            await forget_cached_reads(sender, row.id)

    # Not broadcast: other processes hear each row's info_inserted, without ``bulk``.
    @receiver(info_bulk_inserted, app, dispatch_uid="invalidation.info_bulk_inserted")
    async def invalidate_bulk(sender: Quart, rows: list[InfoRow], **extra: Any) -> None:
        await forget_all_cached_reads(sender)


async def forget_cached_reads(app: Quart, row_id: int) -> None:
    """What a changed row makes stale: every page of the list, and the row's own URL (a 404
    for a new row, the old row for an updated one, a 200 for a deleted one).

    Invalidation by generation (`quart_app.cache.generations`): a page computed before the
    insert committed and stored after this call is never served.
    """
    client = cache.client_for(app)
    # Built from the URL map, not url_for: receivers also run outside requests (the bus).
    row_path = app.url_map.bind("").build("info_api.read_info", {"info_id": row_id})
    # Together: with the local tier each waits for every process to confirm its eviction.
    # Both run to the end even if one fails, before the insert's response goes out.
    outcomes = await asyncio.gather(delete_cached(client, list_info),
                                    delete_cached(client, read_info, path=row_path),
                                    return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def forget_all_cached_reads(app: Quart) -> None:
    """What a bulk load makes stale, in two invalidations however many rows it stored: every
    page of the list and every row's URL (their cached 404s among them)."""
    client = cache.client_for(app)
    outcomes = await asyncio.gather(delete_cached(client, list_info),
                                    delete_cached(client, read_info),
                                    return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
