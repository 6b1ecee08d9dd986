"""The cache API behaves the same on the memory backend and on the real Redis."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as redis

from quart_app.cache import MISSING, CacheClient

from ..support import settings_from


async def test_values_round_trip_by_value(cache_client: CacheClient) -> None:
    value = {"name": "redis", "tags": ["a", "b"], "money": Decimal("588.00")}
    await cache_client.set("row", value)
    fetched = await cache_client.get("row")
    assert fetched == value
    fetched["tags"].append("mutated")
    fetched["name"] = "changed"
    assert await cache_client.get("row") == value


async def test_value_passed_to_set_is_copied(cache_client: CacheClient) -> None:
    value = {"items": [1, 2]}
    await cache_client.set("k", value)
    value["items"].append(3)
    assert await cache_client.get("k") == {"items": [1, 2]}


@pytest.mark.parametrize(
    "value",
    [None, 0, "", False, [], {}, 0.0, "é中文 ✓", (1, "two"), b"\x00\xff",
     uuid.UUID(int=7), datetime.datetime(2026, 11, 24, 5, 0, tzinfo=datetime.UTC),
     Decimal("0.10"), "x" * 1_000_000],
    ids=lambda value: type(value).__name__,
)
async def test_falsy_and_typed_values_are_cacheable(cache_client: CacheClient, value: Any) -> None:
    await cache_client.set("v", value)
    assert await cache_client.has("v")
    fetched = await cache_client.get("v", default=MISSING)
    assert fetched is not MISSING
    assert fetched == value
    assert type(fetched) is type(value)


async def test_miss_is_distinguishable_from_cached_none(cache_client: CacheClient) -> None:
    assert await cache_client.get("absent") is None
    assert await cache_client.get("absent", MISSING) is MISSING
    assert not await cache_client.has("absent")
    await cache_client.set("none", None)
    assert await cache_client.get("none", MISSING) is None


async def test_values_that_are_not_json_safe_are_refused(cache_client: CacheClient) -> None:
    with pytest.raises(TypeError, match="cannot cache a value of type object"):
        await cache_client.set("bad", object())
    assert not await cache_client.has("bad")


async def test_add_only_when_absent(cache_client: CacheClient) -> None:
    assert await cache_client.add("k", 1)
    assert not await cache_client.add("k", 2)
    assert await cache_client.get("k") == 1


async def test_delete_and_delete_many(cache_client: CacheClient) -> None:
    await cache_client.set_many({"a": 1, "b": 2, "c": 3})
    assert await cache_client.delete("a")
    assert not await cache_client.delete("a")
    assert await cache_client.delete_many("b", "missing", "c") == ["b", "c"]
    assert await cache_client.get_many("a", "b", "c") == [None, None, None]


async def test_get_many_and_set_many(cache_client: CacheClient) -> None:
    assert await cache_client.set_many({"x": 1, "y": None, "z": "three"}) == ["x", "y", "z"]
    assert await cache_client.get_many("x", "nope", "z") == [1, None, "three"]
    assert await cache_client.get_dict("x", "z") == {"x": 1, "z": "three"}


async def test_inc_and_dec(cache_client: CacheClient) -> None:
    assert await cache_client.inc("counter") == 1
    assert await cache_client.inc("counter", 5) == 6
    assert await cache_client.dec("counter", 2) == 4
    assert await cache_client.get("counter") == 4
    await cache_client.set("text", "abc")
    with pytest.raises(TypeError):
        await cache_client.inc("text")


async def test_timeout_expires_entries(cache_client: CacheClient) -> None:
    await cache_client.set("short", "v", timeout=0.3)
    await cache_client.set("forever", "v", timeout=0)
    assert await cache_client.get("short") == "v"
    await asyncio.sleep(0.45)
    assert await cache_client.get("short", MISSING) is MISSING
    assert await cache_client.get("forever") == "v"


async def test_default_timeout_applies_when_omitted(cache_config: dict[str, Any]) -> None:
    client = CacheClient(settings_from(cache_config, default_timeout=1))
    try:
        await client.set("k", "v")
        assert await client.get("k") == "v"
        await asyncio.sleep(1.2)
        assert not await client.has("k")
    finally:
        await client.close()


async def test_negative_timeout_is_refused(cache_client: CacheClient) -> None:
    with pytest.raises(ValueError, match="negative"):
        await cache_client.set("k", "v", timeout=-1)


async def test_clear_removes_only_this_prefix(cache_config: dict[str, Any]) -> None:
    prefix = cache_config["CACHE_KEY_PREFIX"]
    mine = CacheClient(settings_from(cache_config, key_prefix=prefix + "[a]*:"))
    neighbour = CacheClient(settings_from(cache_config, key_prefix=prefix + "[a]x:"))
    if cache_config["CACHE_TYPE"] == "SimpleCache":
        neighbour = CacheClient(neighbour.settings, backend=mine.backend)
    try:
        await mine.set_many({f"k{i}": i for i in range(1200)})
        await neighbour.set("k1", "kept")
        assert await mine.clear()
        assert await mine.get_many("k0", "k1", "k1199") == [None, None, None]
        assert await neighbour.get("k1") == "kept"
    finally:
        await neighbour.clear()
        await mine.close()
        await neighbour.close()


async def test_keys_must_be_strings(cache_client: CacheClient) -> None:
    with pytest.raises(TypeError, match="strings"):
        await cache_client.set(5, "v")  # type: ignore[arg-type]


async def test_redis_stores_json_text_under_the_prefix(redis_cache_config: dict[str, Any]) -> None:
    cache_config = redis_cache_config
    cache_client = CacheClient(settings_from(cache_config))
    await cache_client.set("row", {"money": Decimal("1.50"), "n": 1}, timeout=300)
    raw = redis.Redis.from_url(cache_config["CACHE_REDIS_URL"])
    try:
        key = cache_config["CACHE_KEY_PREFIX"] + "row"
        assert await raw.get(key) == b'{"money":{" dec":"1.50"},"n":1}'
        assert 295 <= await raw.ttl(key) <= 300
        await cache_client.set("forever", 1, timeout=0)
        assert await raw.ttl(cache_config["CACHE_KEY_PREFIX"] + "forever") == -1
    finally:
        await cache_client.clear()
        await cache_client.close()
        await raw.aclose()


async def test_redis_pool_is_sized_explicitly(redis_cache_config: dict[str, Any]) -> None:
    client = CacheClient(settings_from(redis_cache_config, redis_pool_size=7))
    try:
        assert client.backend.client.connection_pool.max_connections == 7
        # More concurrent calls than connections wait for one instead of failing.
        results = await asyncio.gather(*(client.inc("n") for _ in range(50)))
        assert sorted(results) == list(range(1, 51))
    finally:
        await client.clear()
        await client.close()
