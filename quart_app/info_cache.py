"""Read-through caching of the info rows and pages, and what an insert must invalidate.

A stored row never changes, so a row is cached until it expires. A page changes whenever a row
is inserted, so page keys carry a generation number that every insert bumps: one increment
invalidates every page of every size, in every process that shares the cache. Absent rows are
not cached: a 404 stored just before the row's insert committed would outlive it.
"""

from __future__ import annotations

from typing import Any

from .cache import MISSING, CacheClient
from .db import InfoStore

ROW_KEY = "info:row:{id}"
GENERATION_KEY = "info:list:generation"
PAGE_KEY = "info:list:{generation}:{limit}:{cursor}"

JSONRow = dict[str, Any]


async def cached_row(cache: CacheClient, store: InfoStore, info_id: int) -> JSONRow | None:
    key = ROW_KEY.format(id=info_id)
    row = await cache.get(key, MISSING)
    if row is not MISSING:
        return row  # type: ignore[no-any-return]
    found = await store.get(info_id)
    if found is None:
        return None
    await cache.set(key, found.to_json())
    return found.to_json()


async def cached_page(
    cache: CacheClient, store: InfoStore, limit: int, cursor: str | None
) -> dict[str, Any]:
    # The generation is read before the query: a page cached under it may miss an insert
    # that commits meanwhile, but that insert bumps the generation before it is acknowledged.
    generation = await cache.get(GENERATION_KEY, 0)
    key = PAGE_KEY.format(generation=generation, limit=limit, cursor=cursor or "")
    page = await cache.get(key, MISSING)
    if page is not MISSING:
        return page  # type: ignore[no-any-return]
    rows, next_cursor = await store.list_page(limit, cursor)
    page = {"items": [row.to_json() for row in rows], "next_cursor": next_cursor}
    await cache.set(key, page)
    return page


async def invalidate_after_insert(cache: CacheClient, info_id: int) -> None:
    await cache.inc(GENERATION_KEY)
    await cache.delete(ROW_KEY.format(id=info_id))
