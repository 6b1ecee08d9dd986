"""Redis going away and coming back, on a throwaway redis-server this test owns."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
import redis.asyncio as redis

from quart_app.cache import MISSING, CacheClient, CacheSettings, CacheUnavailable

from ..support import free_port
from ..throwaway_redis import ThrowawayRedis


def client_for(url: str, **changes: object) -> CacheClient:
    settings = CacheSettings(
        cache_type="RedisCache", redis_url=url, key_prefix="outage:", retry_interval=0.2,
        redis_timeout=0.5,
    )
    return CacheClient(dataclasses.replace(settings, **changes))


def outage_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "quart_app.cache"]


async def test_outage_reads_miss_writes_drop_logged_once_then_recovers(
    throwaway_redis: ThrowawayRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="quart_app.cache")
    client = client_for(throwaway_redis.url)
    try:
        await client.set("k", "before")
        assert await client.get("k") == "before"

        throwaway_redis.kill()
        for _ in range(50):
            assert await client.get("k", MISSING) is MISSING
            assert await client.set("k", "during") is False
            assert await client.inc("n") is None
        assert await client.delete("gone") is False
        assert client.is_down
        assert len(outage_logs(caplog)) == 1
        assert "unreachable" in outage_logs(caplog)[0]

        throwaway_redis.start()  # same port, empty data: it keeps nothing on disk
        await asyncio.sleep(0.25)
        assert await client.set("k", "after")
        assert await client.get("k") == "after"
        assert not client.is_down
        messages = outage_logs(caplog)
        # The dropped delete is made first (a dropped inc is only a lost count).
        assert len(messages) == 3
        assert "1 deletions dropped while it was unreachable are made now" in messages[1]
        assert "reachable again" in messages[2]
    finally:
        await client.close()


async def test_retry_pause_skips_the_dead_server(throwaway_redis: ThrowawayRedis) -> None:
    client = client_for(throwaway_redis.url, retry_interval=30.0)
    attempts = 0
    real_get = client.backend._get

    async def counting_get(*args: object, **kwargs: object) -> object:
        nonlocal attempts
        attempts += 1
        return await real_get(*args, **kwargs)

    client.backend._get = counting_get
    try:
        throwaway_redis.kill()
        for _ in range(200):
            assert await client.get("k") is None
        # The first call found the server gone; within the pause nobody tries it again.
        assert attempts == 1
    finally:
        await client.close()


async def test_errors_raise_when_not_ignored(throwaway_redis: ThrowawayRedis) -> None:
    client = client_for(throwaway_redis.url, ignore_errors=False)
    try:
        await client.set("k", 1)
        throwaway_redis.kill()
        with pytest.raises(CacheUnavailable):
            await client.get("k")
        with pytest.raises(CacheUnavailable):
            await client.set("k", 2)
        with pytest.raises(CacheUnavailable):
            await client.ping()
    finally:
        await client.close()


async def test_unreachable_from_the_start_is_a_miss_not_an_error() -> None:
    client = client_for(f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert await client.get("k", MISSING) is MISSING
        assert await client.set("k", 1) is False
        with pytest.raises(CacheUnavailable):
            await client.ping()
    finally:
        await client.close()


async def test_invalidation_dropped_in_an_outage_clears_the_prefix_on_return(
    throwaway_redis: ThrowawayRedis,
) -> None:
    # A restart that keeps data (or a network cut) brings back entries an insert meant to
    # delete; the client must not serve them.
    client = client_for(throwaway_redis.url)
    raw = client_for(throwaway_redis.url, key_prefix="other:")
    try:
        await client.set("page", "stale")
        await raw.set("kept", "yes")
        await client.backend.client.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        # While Redis is paused, commands time out: the delete is dropped.
        assert await client.delete("page") is False
        assert client.is_down
        await asyncio.sleep(1.6)
        assert await client.get("page", MISSING) is MISSING
        assert not client.is_down
        assert await raw.get("kept") == "yes"
    finally:
        await client.close()
        await raw.close()


async def test_a_dropped_invalidation_is_repaired_for_other_processes_without_waiting(
    throwaway_redis: ThrowawayRedis,
) -> None:
    # Another process (`reader`) shares the Redis: it must not keep serving the entry that
    # `writer` failed to delete, even if `writer` gets no further request.
    writer = client_for(throwaway_redis.url)
    reader = client_for(throwaway_redis.url)
    try:
        await reader.set("page", "stale")
        await writer.backend.client.execute_command("CLIENT", "PAUSE", "1000", "ALL")
        assert await writer.delete("page") is False  # dropped: Redis is paused
        await asyncio.sleep(1.0)  # the pause ends; `writer` is not called again
        for _ in range(100):
            if await reader.get("page", MISSING) is MISSING:
                break
            await asyncio.sleep(0.05)
        assert await reader.get("page", MISSING) is MISSING
        assert not writer.is_down
    finally:
        await writer.close()
        await reader.close()


async def test_many_requests_after_the_outage_clear_the_prefix_once(
    throwaway_redis: ThrowawayRedis, caplog: pytest.LogCaptureFixture,
) -> None:
    client = client_for(throwaway_redis.url)
    try:
        await client.set_many({f"page:{n}": n for n in range(5000)})  # a clear takes a while
        # As the dropped delete of the test above leaves it (its recovery probe would race
        # the requests here, so the state is set directly).
        client.outage._undelivered_clear = "stale"
        pages = await asyncio.gather(*(client.get(f"page:{n}", MISSING) for n in range(20)))
        assert all(page is MISSING for page in pages)
        cleared = [line for line in outage_logs(caplog) if line.startswith("cache cleared")]
        assert "counters kept" in cleared[0]
        assert len(cleared) == 1
    finally:
        await client.close()


async def connections_received(url: str) -> int:
    probe = redis.Redis.from_url(url)
    try:
        stats = await probe.info("stats")
        return int(stats["total_connections_received"])
    finally:
        await probe.aclose()


async def test_a_stalled_redis_is_tried_once_not_retried(
    throwaway_redis: ThrowawayRedis,
) -> None:
    # A timeout means a stalled server: sending the command again on a fresh connection
    # only doubles the time a request waits before it falls back.
    client = client_for(throwaway_redis.url, redis_timeout=0.3)
    try:
        await client.set("k", "v")  # one pooled connection
        before = await connections_received(throwaway_redis.url)
        throwaway_redis.stall()
        try:
            assert await client.get("k", MISSING) is MISSING
        finally:
            throwaway_redis.unstall()
        assert client.is_down
        # The stalled server accepted (in its backlog) only connections that were opened:
        # the probe's own, and none for a retry of the GET.
        assert await connections_received(throwaway_redis.url) == before + 1
    finally:
        await client.close()


async def test_a_delete_in_the_retry_pause_still_reaches_redis(
    throwaway_redis: ThrowawayRedis,
) -> None:
    # After one failed call the writer is in its retry pause, but Redis already answers
    # the reader: a delete skipped for the pause would leave the reader a stale entry.
    writer = client_for(throwaway_redis.url, retry_interval=30.0, redis_timeout=0.3)
    reader = client_for(throwaway_redis.url, retry_interval=30.0)
    try:
        await reader.set("page", "stale")
        throwaway_redis.stall()
        try:
            assert await writer.get("page", MISSING) is MISSING  # times out: the pause starts
        finally:
            throwaway_redis.unstall()
        assert writer.is_down
        assert await writer.delete("page") is True
        assert await reader.get("page", MISSING) is MISSING
        assert not writer.is_down
    finally:
        await writer.close()
        await reader.close()


async def test_recovery_deletes_the_dropped_keys_and_keeps_counters(
    throwaway_redis: ThrowawayRedis,
) -> None:
    # A restart that keeps data (here: a pause) brings back what the dropped delete meant
    # to remove; only that goes. Counters and untouched entries survive the outage.
    client = client_for(throwaway_redis.url, redis_timeout=0.3)
    try:
        await client.set_many({"page": "stale", "other": "fresh"})
        await client.inc("stats:visits", 5)
        throwaway_redis.stall()
        try:
            assert await client.delete("page") is False  # not taken, even after retrying
        finally:
            throwaway_redis.unstall()
        await client.ping()  # Redis answers: the dropped delete is made
        assert await client.get("page", MISSING) is MISSING
        assert await client.get("other") == "fresh"
        assert await client.get("stats:visits") == 5
    finally:
        await client.close()


async def test_a_full_replay_keeps_the_preserved_namespaces(
    throwaway_redis: ThrowawayRedis,
) -> None:
    client = client_for(throwaway_redis.url)
    try:
        client.preserve("stats:")
        await client.set_many({"page": "stale", "stats:visits": 3})
        client.outage.remember_undelivered([f"k{n}" for n in range(10_001)])  # too many to keep
        await client.ping()
        assert await client.get("page", MISSING) is MISSING
        assert await client.get("stats:visits") == 3
    finally:
        await client.close()
