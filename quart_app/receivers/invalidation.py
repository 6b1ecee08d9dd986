"""Keeping the caches true: an insert invalidates the pages and the row it affects.

The tutorial's banner example (delete a cache when a table changes), done as an awaited
receiver so the insert's response is sent only once its reads are fresh.
"""

from __future__ import annotations

from typing import Any

from quart import Quart

from ..blueprints.info import forget_cached_reads
from ..db import InfoRow
from ..dispatch import receiver
from ..signals import info_inserted


def connect(app: Quart) -> None:
    @receiver(info_inserted, app, dispatch_uid="invalidation.info_inserted")
    async def invalidate(sender: Quart, row: InfoRow, **extra: Any) -> None:
        await forget_cached_reads(sender, row.id)
