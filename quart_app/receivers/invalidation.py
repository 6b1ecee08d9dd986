"""Keeping the caches true: an insert invalidates the pages and the row it affects.

The tutorial's banner example (delete a cache when a table changes), done as an awaited
receiver so the insert's response is sent only once its reads are fresh.
"""

from __future__ import annotations

from typing import Any

from quart import Quart

from ..db import InfoRow
from ..dispatch import receiver
from ..extensions import cache
from ..info_cache import invalidate_after_insert
from ..signals import info_inserted


def connect(app: Quart) -> None:
    @receiver(info_inserted, app, dispatch_uid="invalidation.info_inserted")
    async def invalidate(sender: Quart, row: InfoRow, **extra: Any) -> None:
        await invalidate_after_insert(cache.client_for(sender), row.id)
