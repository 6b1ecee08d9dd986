"""The fault run behind the README's reliability table: two workers, inserts and reads under
load while their Redis or memcached (a throwaway server) is killed and restarted, then
stalled (SIGSTOP) and resumed. Run with `-s` to see the counts:

    .venv/bin/python -m pytest tests/cache/test_reliability.py -s -q
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quart_app import create_app

from ..throwaway_memcached import ThrowawayMemcached
from ..throwaway_redis import ThrowawayRedis


@dataclass
class Counts:
    acknowledged: int = 0
    #: Answered 503 with `stored: true`: stored, its invalidation not confirmed.
    stored_unconfirmed: int = 0
    refused: int = 0
    lost: int = 0
    stale: int = 0
    server_errors: int = 0
    recovery: list[float] = field(default_factory=list)


def worker(cache: dict[str, Any], tmp_path: Path, local: bool) -> Quart:
    return create_app({
        **cache, "CACHE_KEY_PREFIX": "reliability:", "CACHE_REDIS_TIMEOUT": 0.3,
        "CACHE_RETRY_INTERVAL": 1.0, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CACHE_LOCAL": local, "CACHE_LOCAL_ACK_TIMEOUT": 0.3,
    })


def faulty_cache(
    request: pytest.FixtureRequest, backend: str, local: bool
) -> tuple[ThrowawayRedis | ThrowawayMemcached, dict[str, Any]]:
    """The server the run kills, and the settings that use it."""
    if backend == "redis":
        redis: ThrowawayRedis = request.getfixturevalue("throwaway_redis")
        # With the local tier, the bus runs on the same (throwaway) Redis.
        return redis, {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis.url}
    memcached: ThrowawayMemcached = request.getfixturevalue("throwaway_memcached")
    # memcached has no pub/sub: the local tier's bus is a Redis that stays up.
    bus = ({"SIGNALS_BUS_URL": request.getfixturevalue("throwaway_redis").url} if local
           else {})
    return memcached, {"CACHE_TYPE": "MemcachedCache",
                       "CACHE_MEMCACHED_SERVERS": [memcached.server], **bus}


#: Clients inserting and reading at once; client n inserts ids n, n + CLIENTS, ...
CLIENTS = 4


async def load(apps: tuple[Quart, Quart], counts: Counts, stop: asyncio.Event,
               acknowledged: list[int], first_id: int) -> None:
    """Insert on one worker, then read the row and the list on the other (read-your-writes)."""
    info_id = first_id - CLIENTS
    while not stop.is_set():
        info_id += CLIENTS
        writer, reader = (app.test_client() for app in (apps[info_id % 2], apps[1 - info_id % 2]))
        created = await writer.post("/api/info", json={"id": info_id, "name": "f", "money": "1"})
        if created.status_code == 201:
            counts.acknowledged += 1
            acknowledged.append(info_id)
        elif created.status_code == 503 and (await created.get_json()).get("stored") is True:
            counts.stored_unconfirmed += 1
            continue  # not acknowledged as fresh: the client was told reads may lag
        else:
            counts.refused += 1
            counts.server_errors += created.status_code >= 500
            continue
        row = await reader.get(f"/api/info/{info_id}")
        page = await (await reader.get("/api/info")).get_json()
        counts.server_errors += row.status_code >= 500
        # The list is newest first, 20 a page: the row is on it unless 20 came after it.
        newer = sum(other > info_id for other in acknowledged)
        listed = info_id in [item["id"] for item in page["items"]]
        if row.status_code != 200 or (not listed and newer < 20 - CLIENTS):
            counts.stale += 1


async def until_cached_again(app: Quart) -> float:
    """Seconds from now until the worker serves the list from Redis again."""
    started = time.monotonic()
    client = app.test_client()
    async with asyncio.timeout(10):
        while True:
            status = (await client.get("/api/info")).headers["Cache-Status"]
            if status.startswith("quart_app; hit"):
                break
            await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.parametrize(("backend", "local"), [
    ("redis", False), ("redis", True), ("memcached", False), ("memcached", True),
], ids=["redis", "redis+local", "memcached", "memcached+local"])
async def test_a_fault_run_loses_nothing_and_serves_nothing_stale(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, local: bool
) -> None:
    server, cache = faulty_cache(request, backend, local)
    counts, acknowledged, stop = Counts(), [], asyncio.Event()
    apps = worker(cache, tmp_path, local), worker(cache, tmp_path, local)
    async with apps[0].test_app(), apps[1].test_app():
        running = asyncio.gather(*(load(apps, counts, stop, acknowledged, first_id)
                                   for first_id in range(1, CLIENTS + 1)))
        await asyncio.sleep(0.5)
        server.kill()  # a crash: the data goes with it
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.start)
        counts.recovery.append(await until_cached_again(apps[1]))
        await asyncio.sleep(0.5)
        server.stall()  # a stall: the data stays, commands time out
        await asyncio.sleep(1.0)
        server.unstall()
        counts.recovery.append(await until_cached_again(apps[1]))
        await asyncio.sleep(0.5)
        stop.set()
        await running
        reader = apps[0].test_client()
        for info_id in acknowledged:
            counts.lost += (await reader.get(f"/api/info/{info_id}")).status_code != 200
    print(f"\nfault run ({backend}{'+local' if local else ''}): {counts}")
    assert counts.acknowledged > 0
    assert counts.lost == 0
    assert counts.stale == 0
    assert counts.server_errors == 0
    assert counts.refused == 0
