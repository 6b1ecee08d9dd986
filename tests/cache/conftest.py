from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from quart_app.cache import CacheClient

from ..support import backend_config, settings_from


@pytest.fixture(params=["memory", "redis", "cluster", "memcached"])
def cache_config(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[dict[str, Any]]:
    """The cache suites run on every backend: memory, Redis, and a Redis Cluster and a
    memcached of their own."""
    with backend_config(request, request.param, key_prefix) as config:
        yield config


@pytest.fixture(params=["redis", "cluster", "memcached"])
def shared_cache_config(
    request: pytest.FixtureRequest, key_prefix: str
) -> Iterator[dict[str, Any]]:
    """A cache several processes share (for leases and two-worker tests): Redis, a Redis
    Cluster, memcached."""
    with backend_config(request, request.param, key_prefix) as config:
        yield config


@pytest.fixture
async def cache_client(cache_config: dict[str, Any]) -> AsyncIterator[CacheClient]:
    client = CacheClient(settings_from(cache_config))
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def redis_cache_config(redis_url: str, key_prefix: str) -> dict[str, Any]:
    return {
        "CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url, "CACHE_KEY_PREFIX": key_prefix
    }
