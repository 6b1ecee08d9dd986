"""A visit counter the cache can no longer add to (Redis INCRBY past 2**63 - 1) stays where it
is: the visits page keeps answering and the periodic flush keeps running for other routes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from quart_app import create_app
from quart_app.receivers.counters import INSERTS_KEY
from quart_app.receivers.visits import VISITS_KEY

from ..services import REDIS_URL, require_service

TOP = 2**63 - 1


@pytest.fixture
def redis_config(key_prefix: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    url = require_service("Redis", REDIS_URL)
    yield {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url, "CACHE_KEY_PREFIX": key_prefix,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}


async def test_a_full_visit_counter_breaks_nothing(
    redis_config: dict[str, Any], redis_client: redis.Redis, key_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    full = key_prefix + VISITS_KEY.format(rule="/")
    await redis_client.set(full, TOP)
    app = create_app({**redis_config, "VISITS_FLUSH_INTERVAL": 0.05})
    try:
        async with app.test_app():
            client = app.test_client()
            await client.get("/")
            await client.get("/alice")
            response = await client.get("/api/stats/visits")
            assert response.status_code == 200
            visits = (await response.get_json())["visits"]
            assert visits["/"] == TOP
            assert visits["/<name>"] == 1
            await client.get("/")
            await client.get("/bob")
            await asyncio.sleep(0.2)  # a few periodic flushes
            stored = await redis_client.get(key_prefix + VISITS_KEY.format(rule="/<name>"))
            assert stored is not None and int(stored) == 2
        assert int(await redis_client.get(full) or 0) == TOP
    finally:
        keys = [key async for key in redis_client.scan_iter(match=key_prefix + "*")]
        if keys:
            await redis_client.delete(*keys)
    refused = [r for r in caplog.records if "cannot add" in r.getMessage()]
    assert len(refused) == 1  # once per counter, not once per flush


async def test_a_full_insert_counter_breaks_no_insert(
    redis_config: dict[str, Any], redis_client: redis.Redis, key_prefix: str,
) -> None:
    await redis_client.set(key_prefix + INSERTS_KEY, TOP)
    app = create_app(redis_config)
    try:
        async with app.test_app():
            client = app.test_client()
            for name in ("a", "b"):
                response = await client.post("/api/info", json={"name": name, "money": 1})
                assert response.status_code == 201
            stats = await client.get("/api/stats")
            assert stats.status_code == 200
            assert (await stats.get_json())["info_inserts"] == TOP
            assert len((await (await client.get("/api/info")).get_json())["items"]) == 2
    finally:
        keys = [key async for key in redis_client.scan_iter(match=key_prefix + "*")]
        if keys:
            await redis_client.delete(*keys)
