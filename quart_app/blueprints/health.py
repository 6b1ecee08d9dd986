"""Liveness and readiness probes for load balancers and orchestrators.

`/readyz` is often reachable from outside: it names what is down and the pool's figures,
but the database URL and the drivers' own messages (hosts, ports, file paths) only with
`DEBUG`; the log has them either way.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app

from ..bus import bus_of
from ..cache import CacheUnavailable
from ..db import StoreUnavailable, current_store
from ..extensions import cache
from ..http_errors import cache_error_message
from ..openapi import RETRY_AFTER, Answer, answers

health = Blueprint("health", __name__)

RETRY_AFTER_SECONDS = 5
ALIVE_SCHEMA = {"type": "object", "required": ["status"],
                "properties": {"status": {"type": "string"}}}
READY_SCHEMA = {"type": "object", "required": ["status", "down", "checks"],
                "properties": {"status": {"enum": ["ready", "unavailable"]},
                               "down": {"type": "array", "items": {"type": "string"}},
                               "checks": {"type": "object"}}}


@health.get("/healthz")
@answers(Answer(200, "the process is alive", schema=ALIVE_SCHEMA))
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@health.get("/readyz")
@answers(Answer(200, "the cache, the database (and the signal bus) answer", schema=READY_SCHEMA),
         Answer(503, "something is down: `down` names it", schema=READY_SCHEMA,
                headers=RETRY_AFTER))
async def readyz() -> tuple[dict[str, Any], int, dict[str, str]]:
    checks: dict[str, dict[str, Any]] = {
        "cache": await _cache_check(),
        "database": await _database_check(),
    }
    bus = bus_of(current_app)
    if bus is not None:
        # Not subscribed yet (or any more): other processes' inserts would go unheard.
        checks["signal_bus"] = {**bus.stats(), "ok": bus.connected}
    down = [name for name, check in checks.items() if not check["ok"]]
    body = {"status": "unavailable" if down else "ready", "down": down, "checks": checks}
    if down:
        return body, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return body, 200, {}


async def _cache_check() -> dict[str, Any]:
    # Per cached view and memoized function: hit, miss, stale, error, bypass (this process).
    check: dict[str, Any] = {"backend": current_app.config["CACHE_TYPE"],
                             "views": cache.view_stats()}
    try:
        await cache.client.ping()
    except CacheUnavailable as error:
        return {**check, "ok": False, "error": cache_error_message(error)}
    return {**check, "ok": True}


async def _database_check() -> dict[str, Any]:
    store = current_store()
    check: dict[str, Any] = {"url": store.display_url} if current_app.debug else {}
    try:
        await store.ping()
    except StoreUnavailable as error:
        return {**check, "ok": False, "error": error.for_client(current_app.debug),
                "pool": store.stats()}
    return {**check, "ok": True, "pool": store.stats()}
