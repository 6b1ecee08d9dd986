"""Flask-Caching's extension and config on a user's own Quart app (its tests/test_basic_app.py
and test_init.py, async), on the memory backend, the real Redis and a memcached."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from quart import Quart
from quart.testing.app import LifespanError

from quart_app import create_app
from quart_app.cache import Cache
from quart_app.cache.backends import BoundedMemoryBackend, PrefixedRedisBackend
from quart_app.cache.cluster import ClusterRedisBackend
from quart_app.cache.memcached import GenerationMemcachedBackend
from quart_app.config import cache_config
from quart_app.errors import ConfigError

BACKENDS = {"SimpleCache": BoundedMemoryBackend, "RedisCache": PrefixedRedisBackend,
            "RedisClusterCache": ClusterRedisBackend, "MemcachedCache": GenerationMemcachedBackend}


class RecordingBackend(BoundedMemoryBackend):
    """A custom backend, as a user's `CACHE_TYPE = "mypackage.mymodule.factory"` returns."""

    def __init__(self, threshold: int, made_with: dict[str, Any]) -> None:
        super().__init__(threshold)
        self.made_with = made_with


def recording_factory(
    app: Quart, config: dict[str, Any], args: list[Any], options: dict[str, Any]
) -> RecordingBackend:
    return RecordingBackend(args[0], {"app": app, "prefix": config["CACHE_KEY_PREFIX"],
                                      "args": args, "options": options})


def wrong_factory(app: Quart, config: dict[str, Any], args: list[Any],
                  options: dict[str, Any]) -> dict[str, str]:
    return {}


@pytest.fixture
def plain_app() -> Quart:
    return Quart(__name__)


def prefix_of(cache: Cache, app: Quart) -> str:
    return cache.client_for(app).settings.key_prefix


async def test_cache_app_with_config_in_app_config(
    plain_app: Quart, cache_config: dict[str, Any]
) -> None:
    plain_app.config.update(cache_config)
    cache = Cache(plain_app)
    assert cache.app is plain_app
    async with plain_app.test_app(), plain_app.app_context():
        assert isinstance(cache.cache, BACKENDS[cache_config["CACHE_TYPE"]])
        assert await cache.set("name", "8888")
        assert await cache.get("name") == "8888"


async def test_config_given_to_init_app_wins_over_the_constructors_and_app_config(
    plain_app: Quart, cache_config: dict[str, Any]
) -> None:
    prefix = cache_config["CACHE_KEY_PREFIX"]
    plain_app.config.update({**cache_config, "CACHE_KEY_PREFIX": prefix + "app:"})
    cache = Cache(config={"CACHE_TYPE": "NullCache", "CACHE_NO_NULL_WARNING": True,
                          "CACHE_KEY_PREFIX": prefix + "constructor:"})
    assert cache.config == {"CACHE_TYPE": "NullCache", "CACHE_NO_NULL_WARNING": True,
                            "CACHE_KEY_PREFIX": prefix + "constructor:"}
    cache.init_app(plain_app, config={"CACHE_TYPE": cache_config["CACHE_TYPE"]})
    async with plain_app.test_app(), plain_app.app_context():
        assert isinstance(cache.cache, BACKENDS[cache_config["CACHE_TYPE"]])
        assert prefix_of(cache, plain_app) == prefix + "constructor:"


@pytest.mark.parametrize("positional", [False, True])
async def test_cache_app_config_keyword_or_flask_cachings_positions(
    plain_app: Quart, cache_config: dict[str, Any], positional: bool
) -> None:
    cache = Cache(plain_app, True, cache_config) if positional else Cache(
        plain_app, config=cache_config)
    async with plain_app.test_app(), plain_app.app_context():
        assert prefix_of(cache, plain_app) == cache_config["CACHE_KEY_PREFIX"]
        await cache.set("k", [1, 2])
        assert await cache.get("k") == [1, 2]


async def test_several_caches_on_one_app_keep_their_own_entries(
    plain_app: Quart, cache_config: dict[str, Any]
) -> None:
    prefix = cache_config["CACHE_KEY_PREFIX"]
    pages = Cache(plain_app, config={**cache_config, "CACHE_KEY_PREFIX": prefix + "pages:"})
    users = Cache(plain_app, config={**cache_config, "CACHE_KEY_PREFIX": prefix + "users:"})

    @pages.memoize(60)
    async def page(number: int) -> str:
        return f"page {number}"

    async with plain_app.test_app(), plain_app.app_context():
        await pages.set("key", "from pages")
        await users.set("key", "from users")
        assert await pages.get("key") == "from pages"
        assert await users.get("key") == "from users"
        assert await page(1) == "page 1"
        await users.clear()
        assert await users.get("key") is None
        assert await pages.get("key") == "from pages"
        assert list(pages.view_stats()) == [f"{__name__}.{page.__qualname__}"]
        assert users.view_stats() == {}


async def test_one_cache_on_several_apps(cache_config: dict[str, Any]) -> None:
    """Flask-Caching's test_init_app_multi_apps: each app has its own prefix and entries."""
    prefix = cache_config["CACHE_KEY_PREFIX"]
    cache = Cache()
    first, second = Quart("first"), Quart("second")
    first.config.update({**cache_config, "CACHE_KEY_PREFIX": prefix + "foo:"})
    second.config.update({**cache_config, "CACHE_KEY_PREFIX": prefix + "bar:"})
    cache.init_app(first)
    cache.init_app(second)
    assert cache.app is second
    async with first.test_app(), second.test_app():
        async with first.app_context():
            assert prefix_of(cache, first) == prefix + "foo:"
            await cache.set("shared-name", "first")
        async with second.app_context():
            assert cache.client.settings.key_prefix == prefix + "bar:"
            assert await cache.get("shared-name") is None
            await cache.set("shared-name", "second")
        async with first.app_context():
            assert await cache.get("shared-name") == "first"


async def test_a_cache_not_set_up_on_the_app_says_how_to(
    plain_app: Quart, cache_config: dict[str, Any]
) -> None:
    cache = Cache(plain_app, config=cache_config)
    other = Quart("other")
    async with other.test_app(), other.app_context():
        with pytest.raises(RuntimeError, match=r"call cache.init_app\(app\)"):
            await cache.get("x")


async def test_unlink_deletes_keys(plain_app: Quart, cache_config: dict[str, Any]) -> None:
    cache = Cache(plain_app, config=cache_config)
    async with plain_app.test_app(), plain_app.app_context():
        await cache.set_many({"a": 1, "b": 2, "c": 3})
        assert sorted(await cache.unlink("a", "b", "absent")) == ["a", "b"]
        assert await cache.get_many("a", "b", "c") == [None, None, 3]


def test_null_cache_warns_unless_told_not_to(plain_app: Quart) -> None:
    with pytest.warns(UserWarning, match="NullCache"):
        Cache(plain_app, config={"CACHE_TYPE": "NullCache"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Cache(Quart("quiet"), config={"CACHE_TYPE": "null", "CACHE_NO_NULL_WARNING": True})


async def test_custom_cache_type_is_a_factory_given_app_config_args_and_options(
    plain_app: Quart, key_prefix: str
) -> None:
    cache = Cache(plain_app, config={
        "CACHE_TYPE": f"{__name__}.recording_factory", "CACHE_KEY_PREFIX": key_prefix,
        "CACHE_ARGS": [3], "CACHE_OPTIONS": {"colour": "blue"},
    })
    async with plain_app.test_app(), plain_app.app_context():
        backend = cache.cache
        assert isinstance(backend, RecordingBackend)
        assert backend.made_with == {"app": plain_app, "prefix": key_prefix, "args": [3],
                                     "options": {"colour": "blue"}}
        for number in range(5):
            await cache.set(f"k{number}", number)
        assert len(backend) == 3  # CACHE_ARGS[0] reached the backend as its bound
        assert await cache.get("k4") == 4


async def test_a_factory_returning_no_backend_is_refused_with_what_to_return(
    plain_app: Quart,
) -> None:
    Cache(plain_app, config={"CACHE_TYPE": f"{__name__}.wrong_factory"})
    with pytest.raises(LifespanError, match="returned a dict: return an aiocache BaseCache"):
        async with plain_app.test_app():
            pass


async def test_redis_host_port_and_db_build_the_connection(
    plain_app: Quart, redis_client: redis.Redis, key_prefix: str, redis_url: str
) -> None:
    database = int(redis_url.rsplit("/", 1)[1])
    cache = Cache(plain_app, config={
        "CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": "127.0.0.1", "CACHE_REDIS_PORT": 6379,
        "CACHE_REDIS_DB": database, "CACHE_KEY_PREFIX": key_prefix,
    })
    try:
        async with plain_app.test_app(), plain_app.app_context():
            await cache.set("where", "here")
            assert await redis_client.get(key_prefix + "where") is not None
            await cache.clear()
    finally:
        await redis_client.delete(key_prefix + "where")


async def test_redis_options_reach_redis_py(plain_app: Quart, redis_url: str,
                                            key_prefix: str) -> None:
    cache = Cache(plain_app, config={
        "CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_url, "CACHE_KEY_PREFIX": key_prefix,
        "CACHE_OPTIONS": {"health_check_interval": 7, "default_timeout": 12},
    })
    async with plain_app.test_app(), plain_app.app_context():
        backend: Any = cache.cache
        assert backend.client.connection_pool.connection_kwargs["health_check_interval"] == 7
        assert cache.client.settings.default_timeout == 12


async def test_memory_options_are_flask_cachings_backend_arguments(plain_app: Quart) -> None:
    cache = Cache(plain_app, config={"CACHE_OPTIONS": {"threshold": 2}})
    async with plain_app.test_app(), plain_app.app_context():
        backend: Any = cache.cache
        assert backend.max_entries == 2


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        ({}, "redis://127.0.0.1:6379/0"),
        ({"CACHE_REDIS_HOST": "cache.internal", "CACHE_REDIS_PORT": 6380,
          "CACHE_REDIS_DB": 3}, "redis://cache.internal:6380/3"),
        ({"CACHE_REDIS_URL": "redis://h:1/2", "CACHE_REDIS_HOST": "ignored",
          "CACHE_REDIS_DB": 5}, "redis://h:1/2"),  # the URL wins, its database too
        ({"CACHE_REDIS_URL": "redis://h:1", "CACHE_REDIS_DB": 5}, "redis://h:1/5"),
        ({"CACHE_REDIS_URL": "redis://h:1/0", "CACHE_REDIS_PASSWORD": "p@ss"},
         "redis://:p%40ss@h:1/0"),
        ({"CACHE_REDIS_URL": "redis://u:own@h:1/0", "CACHE_REDIS_PASSWORD": "other"},
         "redis://u:own@h:1/0"),
    ],
)
def test_redis_url_from_flask_cachings_settings(settings: dict[str, Any], url: str) -> None:
    assert cache_config(settings)["CACHE_REDIS_URL"] == url


def test_redis_password_only_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text('CACHE_REDIS_PASSWORD = "committed"\n')
    monkeypatch.setenv("QUART_APP_SETTINGS", str(settings_file))
    with pytest.raises(ConfigError, match=r"set only in the environment "
                                          r"\(QUART_CACHE_REDIS_PASSWORD\)") as refused:
        create_app()
    assert "committed" not in str(refused.value)
    settings_file.write_text('CACHE_REDIS_HOST = "10.0.0.5"\n')
    monkeypatch.setenv("QUART_CACHE_REDIS_PASSWORD", "from-env")
    app = create_app()
    assert app.config["CACHE_REDIS_URL"] == "redis://:from-env@10.0.0.5:6379/0"
