"""The fault run behind the README's reliability table: two workers, inserts and reads under
load while their Redis or memcached (a throwaway server) is killed and restarted, then
stalled (SIGSTOP) and resumed. Run with `-s` to see the counts:

    .venv/bin/python -m pytest tests/cache/test_reliability.py -s -q
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quart_app import create_app

from ..support import LOAD_CLIENTS, LoadCounts, read_your_writes_load, until_cached_again
from ..throwaway_memcached import ThrowawayMemcached
from ..throwaway_redis import ThrowawayRedis


@dataclass
class Counts(LoadCounts):
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
        running = asyncio.gather(*(read_your_writes_load(apps, counts, stop, acknowledged,
                                                         first_id)
                                   for first_id in range(1, LOAD_CLIENTS + 1)))
        await asyncio.sleep(0.5)
        server.kill()  # a crash: the data goes with it
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.start)
        counts.recovery.append(await until_cached_again(apps[1], limit=10))
        await asyncio.sleep(0.5)
        server.stall()  # a stall: the data stays, commands time out
        await asyncio.sleep(1.0)
        server.unstall()
        counts.recovery.append(await until_cached_again(apps[1], limit=10))
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
