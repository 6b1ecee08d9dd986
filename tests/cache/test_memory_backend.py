"""The in-memory backend: bounded, least recently used out first, no timer per key."""

from __future__ import annotations

import asyncio

from quart_app.cache import MISSING, CacheClient, CacheSettings


def memory_client(threshold: int) -> CacheClient:
    return CacheClient(CacheSettings(cache_type="SimpleCache", threshold=threshold))


async def test_threshold_bounds_the_entries_evicting_least_recently_used() -> None:
    client = memory_client(threshold=3)
    await client.set_many({"a": 1, "b": 2, "c": 3})
    assert await client.get("a") == 1  # "a" is now the most recently used
    await client.set("d", 4)
    assert len(client.backend) == 3
    assert await client.get("b", MISSING) is MISSING
    assert await client.get_many("a", "c", "d") == [1, 3, 4]


async def test_many_keys_stay_within_threshold() -> None:
    client = memory_client(threshold=1000)
    for start in range(0, 5000, 500):
        await client.set_many({f"k{i}": i for i in range(start, start + 500)})
    assert len(client.backend) == 1000
    assert await client.get("k4999") == 4999
    assert await client.get("k0", MISSING) is MISSING


async def test_expiry_needs_no_timer_per_key() -> None:
    loop = asyncio.get_running_loop()
    scheduled_before = len(loop._scheduled)  # type: ignore[attr-defined]
    client = memory_client(threshold=10_000)
    await client.set_many({f"k{i}": i for i in range(1000)}, timeout=60)
    for i in range(100):
        await client.set(f"single{i}", i, timeout=60)
    assert len(loop._scheduled) == scheduled_before  # type: ignore[attr-defined]


async def test_expired_entries_are_dropped_on_read() -> None:
    client = memory_client(threshold=10)
    await client.set("k", "v", timeout=0.05)
    await asyncio.sleep(0.1)
    assert not await client.has("k")
    assert len(client.backend) == 0


async def test_null_cache_stores_nothing() -> None:
    client = CacheClient(CacheSettings(cache_type="NullCache"))
    assert await client.set("k", "v")
    assert await client.get("k", MISSING) is MISSING
    assert not await client.has("k")
