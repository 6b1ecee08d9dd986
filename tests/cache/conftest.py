from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from quart_app.cache import CacheClient

from ..support import settings_from


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
