"""Counters the shipped receivers keep."""

from __future__ import annotations

from quart import Blueprint

from ..extensions import cache
from ..receivers.counters import INSERTS_KEY

stats = Blueprint("stats", __name__, url_prefix="/api/stats")


@stats.get("")
async def read_stats() -> dict[str, int]:
    return {"info_inserts": int(await cache.get(INSERTS_KEY, 0) or 0)}
