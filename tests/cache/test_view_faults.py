"""Cached views and memoized functions when the cache fails, and across processes on Redis.

Outages use a throwaway redis-server this module kills and restarts; "processes" are two
apps on one Redis prefix, each with its own single-flight table, as two workers would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient

from quart_app.cache.cluster import ClusterRedisBackend
from quart_app.cache.memcached import GenerationMemcachedBackend
from quart_app.extensions import cache

from ..throwaway_redis import ThrowawayRedis
from .view_app import create_view_app, runs

UNAVAILABLE = "quart_app; fwd=miss; detail=cache-unavailable"


def outage_config(server: ThrowawayRedis, tmp_path: Path, **changes: Any) -> dict[str, Any]:
    return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": server.url,
            "CACHE_KEY_PREFIX": "faults:", "CACHE_REDIS_TIMEOUT": 0.5,
            "CACHE_RETRY_INTERVAL": 0.1, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            **changes}


async def until_status(client: QuartClient, path: str, prefix: str) -> Any:
    """Request `path` until its Cache-Status starts with `prefix` (the breaker closes by itself)."""
    while True:
        response = await client.get(path)
        assert response.status_code == 200
        if response.headers["Cache-Status"].startswith(prefix):
            return response
        await asyncio.sleep(0.05)


async def test_redis_killed_and_restarted_views_run_uncached_then_cache_again(
    throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    app = create_view_app(outage_config(throwaway_redis, tmp_path))
    async with app.test_app():
        client = app.test_client()
        await client.get("/probe/plain")
        assert (await client.get("/probe/plain")).headers["Cache-Status"].startswith(
            "quart_app; hit")

        throwaway_redis.kill()
        for expected_runs in range(2, 12):
            response = await client.get("/probe/plain")
            assert response.status_code == 200
            assert (await response.get_json())["runs"] == expected_runs  # fresh every time
            assert response.headers["Cache-Status"] == UNAVAILABLE
        ready = await (await client.get("/readyz")).get_json()
        counts = ready["checks"]["cache"]["views"][
            "tests.cache.view_app.add_probe_views.<locals>.plain"]
        assert counts["error"] == 10 and counts["hit"] == 1 and counts["miss"] == 1

        throwaway_redis.start()  # empty: it keeps nothing on disk
        await asyncio.wait_for(until_status(client, "/probe/plain", "quart_app; fwd=miss; stored"),
                               timeout=10)
        before = runs(app, "plain")
        hit = await client.get("/probe/plain")
        assert hit.headers["Cache-Status"].startswith("quart_app; hit")
        assert runs(app, "plain") == before


async def test_the_client_breaker_spares_a_dead_redis_one_attempt_per_pause(
    throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    app = create_view_app(outage_config(throwaway_redis, tmp_path, CACHE_RETRY_INTERVAL=30))
    async with app.test_app():
        client = app.test_client()
        backend: Any = cache.client_for(app).backend
        attempts = 0
        real_execute = backend.client.execute_command

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal attempts
            attempts += 1
            return await real_execute(*args, **kwargs)

        backend.client.execute_command = counting
        throwaway_redis.kill()
        assert (await client.get("/probe/plain")).status_code == 200  # finds Redis gone
        responses = await asyncio.gather(*(client.get("/probe/plain") for _ in range(50)))
        assert {response.status_code for response in responses} == {200}
        more = [await client.get(f"/probe/search?n={n}") for n in range(20)]
        assert {response.headers["Cache-Status"] for response in more} == {UNAVAILABLE}
        # The first call met the dead server; during the pause nothing tried it again.
        assert attempts == 1


async def test_errors_not_ignored_still_never_fail_a_cached_view(
    throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    app = create_view_app(outage_config(throwaway_redis, tmp_path, CACHE_IGNORE_ERRORS=False))
    async with app.test_app():
        client = app.test_client()
        throwaway_redis.kill()
        response = await client.get("/probe/plain")
        assert response.status_code == 200  # CacheUnavailable would be a 503 elsewhere
        assert response.headers["Cache-Status"] == UNAVAILABLE


async def test_memoized_functions_run_uncached_while_redis_is_down(
    throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    calls = 0

    @cache.memoize(60)
    async def compute(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * 2

    app = create_view_app(outage_config(throwaway_redis, tmp_path))
    async with app.test_app(), app.app_context():
        assert await compute(2) == 4
        assert await compute(2) == 4
        assert calls == 1
        throwaway_redis.kill()
        assert [await compute(2) for _ in range(3)] == [4, 4, 4]
        assert calls == 4
        name = next(name for name in cache.view_stats() if name.endswith("compute"))
        assert cache.view_stats()[name]["error"] == 3


@pytest.fixture
async def corrupted_app(app_config: dict[str, Any]) -> AsyncIterator[Quart]:
    app = create_view_app(app_config)
    async with app.test_app():
        yield app


async def test_an_unreadable_entry_is_a_logged_miss_never_a_500(
    corrupted_app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    client = corrupted_app.test_client()
    await client.get("/probe/plain")
    backend: Any = cache.client_for(corrupted_app).backend
    prefix = cache.client_for(corrupted_app).settings.key_prefix
    if hasattr(backend, "_entries"):
        for key, (_, expires) in list(backend._entries.items()):
            backend._entries[key] = ("{not json", expires)
    elif isinstance(backend, GenerationMemcachedBackend):  # no SCAN: the entry's own key
        async with corrupted_app.app_context():
            entry = corrupted_app.view_functions["plain"].make_cache_key(path="/probe/plain")
        await backend._set(prefix + entry, "{not json")
    else:
        async for key in backend.client.scan_iter(match=prefix + "*"):
            await backend.client.set(key, "{not json")
    response = await client.get("/probe/plain")
    assert response.status_code == 200
    assert response.headers["Cache-Status"] == UNAVAILABLE
    assert "serving it uncached" in caplog.text


# --- two processes on one Redis (or memcached) -----------------------------------------------


@pytest.fixture
async def two_workers(
    shared_cache_config: dict[str, Any], tmp_path: Path
) -> AsyncIterator[tuple[Quart, Quart]]:
    config = {**shared_cache_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    first, second = create_view_app(config), create_view_app(config)
    async with first.test_app(), second.test_app():
        for app in (first, second):  # a cluster client learns the slot map at its first call
            if isinstance(cache.client_for(app).backend, ClusterRedisBackend):
                await cache.client_for(app).has("warm-up")
        yield first, second


async def test_a_miss_in_two_processes_runs_the_view_once(two_workers: tuple[Quart, Quart]) -> None:
    first, second = two_workers
    entered, release = first.extensions["probe"].gate("shared")
    second.extensions["probe"].gate("shared")[1].set()  # would not block if it ever ran

    first_requests = [asyncio.ensure_future(first.test_client().get("/probe/gated/shared"))
                      for _ in range(20)]
    await entered.wait()  # the first process holds the lease and runs the view
    second_requests = [asyncio.ensure_future(second.test_client().get("/probe/gated/shared"))
                       for _ in range(20)]
    for _ in range(500):  # until its requests have missed and wait on the lease
        if len(cache.runtime_for(second).flights):
            break
        await asyncio.sleep(0.01)
    release.set()
    responses = await asyncio.gather(*first_requests, *second_requests)

    assert runs(first, "gated-shared") == 1
    assert runs(second, "gated-shared") == 0
    assert {(await response.get_data(as_text=True)) for response in responses} == {
        '{"runs":1,"version":0}\n'}
    # The second process found the first one's entry: hits, never a run of its own.
    assert all(response.headers["Cache-Status"].startswith("quart_app; hit")
               for response in responses[20:])


async def test_an_invalidation_in_one_process_is_seen_by_the_other(
    two_workers: tuple[Quart, Quart],
) -> None:
    first, second = two_workers
    await first.test_client().get("/probe/plain")
    assert (await second.test_client().get("/probe/plain")).headers["Cache-Status"].startswith(
        "quart_app; hit")
    async with first.app_context():
        await cache.delete_cached(first.view_functions["plain"])
    response = await second.test_client().get("/probe/plain")
    assert response.headers["Cache-Status"] == "quart_app; fwd=stale; stored"


async def test_an_insert_whose_invalidation_redis_did_not_take_is_not_acknowledged(
    throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    # Two workers on one Redis: the writer's deletion times out (Redis stalled), so the
    # reader may serve the old list until the writer can delete again. The writer must not
    # answer 201 as if every reader would see the row.
    config = outage_config(throwaway_redis, tmp_path, CACHE_REDIS_TIMEOUT=0.3)
    writer, reader = create_view_app(config), create_view_app(config)
    async with writer.test_app(), reader.test_app():
        assert (await (await reader.test_client().get("/api/info")).get_json())["items"] == []
        throwaway_redis.stall()
        try:
            created = await writer.test_client().post(
                "/api/info", json={"id": 1, "name": "stalled", "money": "1"})
        finally:
            throwaway_redis.unstall()
        assert created.status_code == 503
        body = await created.get_json()
        assert body["error"] == "cache_unavailable" and body["stored"] is True
        assert int(created.headers["Retry-After"]) >= 1
        assert created.headers["Location"].endswith("/api/info/1")
        # Once Redis answers, the writer makes the deletion: the reader sees the row.
        async with asyncio.timeout(10):
            while True:
                page = await (await reader.test_client().get("/api/info")).get_json()
                if [row["id"] for row in page["items"]] == [1]:
                    break
                await asyncio.sleep(0.05)
        again = await writer.test_client().post(
            "/api/info", json={"id": 2, "name": "answered", "money": "1"})
        assert again.status_code == 201


async def test_forgetting_what_an_outage_left_stale_keeps_the_counters(
    throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    app = create_view_app(outage_config(throwaway_redis, tmp_path))
    async with app.test_app():
        client = app.test_client()
        assert (await client.post("/api/info", json={"name": "n", "money": "1"})).status_code == 201
        await client.get("/api/info")
        visits = (await (await client.get("/api/stats/visits")).get_json())["visits"]
        assert visits["/api/info"] >= 1
        cache_client = cache.client_for(app)
        # More deletions were dropped than a client remembers: it forgets all it can.
        cache_client.outage.remember_undelivered([f"dropped:{n}" for n in range(10_001)])
        await cache_client.ping()
        assert (await (await client.get("/api/stats")).get_json())["info_inserts"] == 1
        after = (await (await client.get("/api/stats/visits")).get_json())["visits"]
        assert after["/api/info"] >= visits["/api/info"]


@pytest.mark.parametrize("cache_config", ["redis", "memcached"], indirect=True)
async def test_reads_racing_inserts_on_a_healthy_shared_cache_are_never_cache_errors(
    app_config: dict[str, Any],
) -> None:
    # An invalidation landing between a read's lookup and its store is a race, not a fault:
    # the read is answered fresh (fwd=stale or not stored), never as cache-unavailable.
    first, second = create_view_app(app_config), create_view_app(app_config)
    statuses: list[str] = []
    async with first.test_app(), second.test_app():
        readers = (first.test_client(), second.test_client())

        async def read(path: str, reader: QuartClient) -> None:
            response = await reader.get(path)
            assert response.status_code in (200, 404)
            statuses.append(response.headers["Cache-Status"])

        for info_id in range(1, 31):
            writer = readers[info_id % 2]
            await asyncio.gather(
                writer.post("/api/info", json={"id": info_id, "name": "r", "money": "1"}),
                *(read(path, reader) for reader in readers for path in
                  ("/api/info", f"/api/info/{info_id}", f"/api/info/{info_id + 1}")
                  for _ in range(4)),
            )
        errors = sum(count["error"] for app in (first, second)
                     for count in cache.runtime_for(app).stats.snapshot().values())
    assert len(statuses) == 30 * 24
    assert [status for status in statuses if "cache-unavailable" in status] == []
    assert errors == 0


async def test_the_tutorials_get_insert_is_not_acknowledged_either(
    throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    app = create_view_app(outage_config(throwaway_redis, tmp_path, CACHE_REDIS_TIMEOUT=0.3))
    async with app.test_app():
        client = app.test_client()
        throwaway_redis.stall()
        try:
            created = await client.get("/info?id=5&name=redis&money=588")
        finally:
            throwaway_redis.unstall()
        assert created.status_code == 503
        assert (await created.get_json())["stored"] is True
        assert (await client.get("/api/info/5")).status_code == 200
