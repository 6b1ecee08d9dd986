from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from quart_app.cache import CacheClient, CacheSettings


def settings_from(cache_config: dict[str, Any], **changes: Any) -> CacheSettings:
    fields = {
        "cache_type": cache_config["CACHE_TYPE"],
        "key_prefix": cache_config["CACHE_KEY_PREFIX"],
    }
    if "CACHE_REDIS_URL" in cache_config:
        fields["redis_url"] = cache_config["CACHE_REDIS_URL"]
    return CacheSettings(**{**fields, **changes})


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
