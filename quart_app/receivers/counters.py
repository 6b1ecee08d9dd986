"""Counting committed inserts in the cache (shared by every worker when the cache is Redis)."""

from __future__ import annotations

from typing import Any

from quart import Quart

from ..db import InfoRow
from ..dispatch import receiver
from ..extensions import cache
from ..signals import info_inserted

INSERTS_KEY = "stats:info_inserts"


def connect(app: Quart) -> None:
    # Counted where the insert was made: with Redis the counter is shared by every process.
    @receiver(info_inserted, app, dispatch_uid="counters.info_inserted", origin_only=True)
    async def count_insert(sender: Quart, row: InfoRow, **extra: Any) -> None:
        await cache.client_for(sender).inc(INSERTS_KEY)
