"""Counters the shipped receivers keep: inserts, updates, deletes, notifications, visits per
route."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app

from ..extensions import cache
from ..openapi import NOT_MODIFIED, Answer, answers
from ..receivers.counters import DELETES_KEY, INSERTS_KEY, UPDATES_KEY
from ..receivers.notify import SENT_KEY
from ..receivers.visits import visit_counter

stats = Blueprint("stats", __name__, url_prefix="/api/stats")

VISITS_CACHE_SECONDS = 1
COUNT = {"type": "integer", "minimum": 0}
STATS_SCHEMA = {"type": "object", "required": ["info_inserts", "notifications_sent"],
                "properties": {"info_inserts": COUNT, "notifications_sent": COUNT}}
VISITS_SCHEMA = {"type": "object", "required": ["enabled", "visits"],
                 "properties": {"enabled": {"type": "boolean"},
                                "visits": {"type": "object", "additionalProperties": COUNT}}}


@stats.get("")
@answers(Answer(200, "counts kept by the shipped receivers", schema=STATS_SCHEMA), 503)
async def read_stats() -> dict[str, int]:
    inserts, updates, deletes, sent = await cache.get_many(
        INSERTS_KEY, UPDATES_KEY, DELETES_KEY, SENT_KEY)
    return {"info_inserts": int(inserts or 0), "info_updates": int(updates or 0),
            "info_deletes": int(deletes or 0), "notifications_sent": int(sent or 0)}


def _unflushed_visits() -> bool:
    counter = visit_counter(current_app)
    return counter is not None and bool(counter.pending)


@stats.get("/visits")
@cache.cached(timeout=VISITS_CACHE_SECONDS, forced_update=_unflushed_visits)
@answers(Answer(200, "visits per route", schema=VISITS_SCHEMA), NOT_MODIFIED, 503)
async def read_visits() -> dict[str, Any]:
    """Visits per route; with Redis, summed over every worker (each flushes every second).

    Cached for a second, as fresh as the other workers' totals are anyway; a worker that
    counted visits it has not flushed yet recomputes, so it always sees its own.
    """
    counter = visit_counter(current_app)
    if counter is None:
        return {"enabled": False, "visits": {}}
    rules = sorted({rule.rule for rule in current_app.url_map.iter_rules()})
    return {"enabled": True, "visits": await counter.totals(cache.client, rules)}
