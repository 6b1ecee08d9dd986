"""RedisSentinelCache: its settings, and the cache, view caching, read-your-writes and the
signal bus on a real Sentinel deployment (a throwaway primary, replica and three sentinels).

Failovers are in test_sentinel_failover.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quart_app import create_app
from quart_app.cache import MISSING, CacheClient, CacheSettings
from quart_app.cache.sentinel import SentinelRedisBackend
from quart_app.config import cache_config
from quart_app.errors import ConfigError

from ..support import (
    an_insert_evicts_the_local_copy_on_the_other,
    views_are_cached_and_reads_follow_writes,
    wait_until,
)
from ..throwaway_sentinel import MASTER_NAME, ThrowawaySentinels, shared_sentinels

__all__ = ["shared_sentinels"]  # a fixture


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", [
    "RedisSentinelCache", "redissentinel", "flask_caching.backends.RedisSentinelCache",
    "flask_caching.backends.redissentinel",
])
def test_flask_caching_spellings_mean_the_sentinel_cache(spelling: str) -> None:
    assert cache_config({"CACHE_TYPE": spelling})["CACHE_TYPE"] == "RedisSentinelCache"


@pytest.mark.parametrize(("given", "sentinels"), [
    (None, [("127.0.0.1", 26379)]),  # Flask-Caching's default
    ([("10.0.0.1", 26379), ("10.0.0.2", 26380)], [("10.0.0.1", 26379), ("10.0.0.2", 26380)]),
    ([["s1", "26379"]], [("s1", 26379)]),
    (["s1:26379", "[::1]:26380"], [("s1", 26379), ("::1", 26380)]),
    ("s1:26379, s2:26379", [("s1", 26379), ("s2", 26379)]),  # an environment variable
    (["s1", 26379], [("s1", 26379)]),  # one pair
])
def test_sentinels_are_read_as_flask_caching_and_strings_give_them(
    given: Any, sentinels: list[tuple[str, int]]
) -> None:
    config = cache_config({"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINELS": given})
    assert config["CACHE_REDIS_SENTINELS"] == sentinels


@pytest.mark.parametrize(("settings", "message"), [
    ({"CACHE_REDIS_SENTINELS": ["s1"]}, "the port is missing"),
    ({"CACHE_REDIS_SENTINELS": ["s1:0"]}, "a port from 1 to 65535"),
    ({"CACHE_REDIS_SENTINELS": [["s1", 26379, 1]]}, 'each "host:port" or [host, port]'),
    ({"CACHE_REDIS_SENTINELS": []}, "a list of sentinels"),
    ({"CACHE_REDIS_SENTINEL_MASTER": ""}, "the name the sentinels monitor"),
    ({"SIGNALS_BUS_URL": "redis+sentinel://s1/mymaster"}, "the port is missing"),
])
def test_bad_sentinel_settings_are_refused_with_the_reason(
    settings: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        create_app({"CACHE_TYPE": "RedisSentinelCache",
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **settings})


def test_the_sentinel_password_is_refused_in_a_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text('CACHE_REDIS_SENTINEL_PASSWORD = "committed"\n')
    monkeypatch.setenv("QUART_APP_SETTINGS", str(settings_file))
    with pytest.raises(ConfigError, match="QUART_CACHE_REDIS_SENTINEL_PASSWORD"):
        create_app()


def test_with_the_local_tier_the_bus_defaults_to_the_sentinel_master(tmp_path: Path) -> None:
    app = create_app({"CACHE_TYPE": "RedisSentinelCache", "CACHE_LOCAL": True,
                      "CACHE_REDIS_SENTINELS": "s1:26379,s2:26380",
                      "CACHE_REDIS_SENTINEL_MASTER": "main", "CACHE_REDIS_DB": 3,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert app.config["SIGNALS_BUS_URL"] == "redis+sentinel://s1:26379,s2:26380/main/3"


# --- on a real deployment ---------------------------------------------------------------------


@pytest.fixture
def prefix() -> str:
    return f"sentinel-{uuid.uuid4().hex[:8]}:"


def sentinel_app(deployment: ThrowawaySentinels, tmp_path: Path, prefix: str,
                 **extra: Any) -> Quart:
    return create_app({**deployment.app_config(prefix),
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}", **extra})


@pytest.fixture
async def sentinel_client(
    shared_sentinels: ThrowawaySentinels, prefix: str
) -> AsyncIterator[CacheClient]:
    settings = CacheSettings(cache_type="RedisSentinelCache", key_prefix=prefix,
                             sentinels=tuple(shared_sentinels.sentinels),
                             sentinel_master=MASTER_NAME)
    client = CacheClient(settings)
    try:
        yield client
    finally:
        await client.close()


async def test_the_key_value_api_works_on_the_master(
    sentinel_client: CacheClient, shared_sentinels: ThrowawaySentinels, prefix: str
) -> None:
    assert isinstance(sentinel_client.backend, SentinelRedisBackend)
    assert await sentinel_client.set("name", "8888")
    assert await sentinel_client.get("name") == "8888"
    assert await sentinel_client.get("absent", MISSING) is MISSING
    assert not await sentinel_client.add("name", "other")
    assert await sentinel_client.inc("visits") == 1
    assert await sentinel_client.inc("visits", 4) == 5
    assert await sentinel_client.get_many("name", "absent") == ["8888", None]
    assert await sentinel_client.delete("name")
    assert not await sentinel_client.has("name")
    assert await sentinel_client.set("again", [1, 2])
    assert await sentinel_client.clear()
    assert await sentinel_client.get("again") is None
    # it was the primary that took them: the master the sentinels name
    primary = shared_sentinels.client(shared_sentinels.master_port())
    try:
        assert primary.info("replication")["role"] == "master"
        assert primary.get(prefix + "visits") is None  # cleared there
    finally:
        primary.close()


async def test_views_are_cached_and_reads_follow_writes(
    shared_sentinels: ThrowawaySentinels, tmp_path: Path, prefix: str
) -> None:
    await views_are_cached_and_reads_follow_writes(
        sentinel_app(shared_sentinels, tmp_path, prefix))


async def test_with_the_local_tier_an_insert_is_read_everywhere_over_the_sentinel_bus(
    shared_sentinels: ThrowawaySentinels, tmp_path: Path, prefix: str
) -> None:
    channel = f"{prefix}signals"
    first = sentinel_app(shared_sentinels, tmp_path, prefix, CACHE_LOCAL=True,
                         SIGNALS_BUS_CHANNEL=channel)
    second = sentinel_app(shared_sentinels, tmp_path, prefix, CACHE_LOCAL=True,
                          SIGNALS_BUS_CHANNEL=channel)
    assert first.config["SIGNALS_BUS_URL"].startswith("redis+sentinel://")
    async with first.test_app(), second.test_app():
        buses = [app.extensions["signal_bus"] for app in (first, second)]
        await wait_until(lambda: all(bus.connected for bus in buses))
        await an_insert_evicts_the_local_copy_on_the_other(first, second)
