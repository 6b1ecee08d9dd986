"""MemcachedCache: Flask-Caching's spellings and settings, and what memcached cannot do done
another way (generation-based `clear()`, keys memcached refuses, CAS counters, leases),
against a real memcached. The shared cache suites also run on it (tests/cache/conftest.py);
the fault runs are here and in test_reliability.py.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiomcache
import pytest
from quart import Quart

from quart_app import create_app
from quart_app.cache import CacheClient, CacheSettings
from quart_app.cache.memcached import GenerationMemcachedBackend, generation_key, wire_key
from quart_app.config import cache_config, refuse_secrets_in_file
from quart_app.errors import ConfigError

from ..throwaway_memcached import ThrowawayMemcached
from .view_app import create_view_app

UNAVAILABLE = "quart_app; fwd=miss; detail=cache-unavailable"


# --- config ------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", [
    "MemcachedCache", "memcached", "flask_caching.backends.MemcachedCache",
    "flask_caching.backends.memcache.MemcachedCache",
])
def test_flask_cachings_spellings_mean_memcached(spelling: str) -> None:
    config = cache_config({"CACHE_TYPE": spelling})
    assert config["CACHE_TYPE"] == "MemcachedCache"
    assert config["CACHE_MEMCACHED_SERVERS"] == ["127.0.0.1:11211"]


@pytest.mark.parametrize("spelling", [
    "SASLMemcachedCache", "saslmemcached", "flask_caching.backends.SASLMemcachedCache",
    "SpreadSASLMemcachedCache",
])
def test_the_sasl_spellings_are_refused_with_the_reason(spelling: str) -> None:
    with pytest.raises(ConfigError, match="SASL needs the binary one; use MemcachedCache"):
        cache_config({"CACHE_TYPE": spelling})


@pytest.mark.parametrize("key", ["CACHE_MEMCACHED_USERNAME", "CACHE_MEMCACHED_PASSWORD"])
def test_memcached_credentials_are_refused_not_ignored(key: str) -> None:
    with pytest.raises(ConfigError, match=f"bad setting {key} = .*authentication is not "):
        cache_config({"CACHE_TYPE": "MemcachedCache", key: "secret"})


def test_the_memcached_password_is_not_taken_from_a_settings_file() -> None:
    with pytest.raises(ConfigError, match="set only in the environment"):
        refuse_secrets_in_file({"CACHE_MEMCACHED_PASSWORD": "secret"})


@pytest.mark.parametrize(("servers", "expected"), [
    (["10.0.0.5:11311"], ["10.0.0.5:11311"]),
    ("10.0.0.5:11311", ["10.0.0.5:11311"]),
    (["cache.internal"], ["cache.internal:11211"]),
    (None, ["127.0.0.1:11211"]),
])
def test_one_server_as_flask_caching_spells_it(servers: Any, expected: list[str]) -> None:
    config = cache_config({"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": servers})
    assert config["CACHE_MEMCACHED_SERVERS"] == expected
    assert CacheSettings.from_config(config).memcached_server == (
        expected[0].rpartition(":")[0], int(expected[0].rpartition(":")[2]))


@pytest.mark.parametrize(("servers", "message"), [
    (["a:11211", "b:11211"], "one server: aiocache's memcached backend talks to one"),
    (["a:http"], 'one "host:port"'),
    (["a:0"], 'one "host:port"'),
    ([11211], 'a list of "host:port" strings'),
])
def test_bad_server_lists_are_refused(servers: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cache_config({"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": servers})


def test_the_local_tier_on_memcached_needs_a_redis_bus(tmp_path: Path) -> None:
    base = {"CACHE_TYPE": "MemcachedCache", "CACHE_LOCAL": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    with pytest.raises(ConfigError, match="memcached has no pub/sub"):
        create_app(base)
    app = create_app({**base, "SIGNALS_BUS_URL": "redis://127.0.0.1:6379/0"})
    assert app.config["CACHE_LOCAL"] is True


# --- the backend, on a real memcached ---------------------------------------------------


def client_on(server: ThrowawayMemcached, prefix: str, **changes: Any) -> CacheClient:
    host, _, port = server.server.rpartition(":")
    return CacheClient(CacheSettings(cache_type="MemcachedCache", key_prefix=prefix,
                                     memcached_server=(host, int(port)), **changes))


async def test_keys_memcached_refuses_are_stored_under_their_digest(
    memcached_server: ThrowawayMemcached, key_prefix: str
) -> None:
    client = client_on(memcached_server, key_prefix)
    keys = ["with space", "tab\there", "é", "x" * 400, "#looks-reserved", "plain"]
    try:
        for number, key in enumerate(keys):
            assert await client.set(key, number)
        assert await client.get_many(*keys) == list(range(len(keys)))
        assert all(len(wire_key(key_prefix + key)) <= 250 for key in keys)
        assert len({wire_key(key_prefix + key) for key in keys}) == len(keys)
    finally:
        await client.close()


async def test_clear_is_a_new_generation_every_process_sees_at_once(
    memcached_server: ThrowawayMemcached, key_prefix: str
) -> None:
    first, second = client_on(memcached_server, key_prefix), client_on(memcached_server,
                                                                        key_prefix)
    other = client_on(memcached_server, key_prefix + "other:")
    try:
        await first.set("entry", "old")
        await first.inc("count", 5)
        await other.set("entry", "kept")
        assert await second.get("entry") == "old"
        assert await second.clear()
        assert await first.get("entry") is None
        assert not await first.has("entry")
        assert await first.add("entry", "new")  # the cleared value does not block an add
        assert await first.inc("count") == 1  # a cleared counter starts again
        assert await other.get("entry") == "kept"  # another prefix is another generation
    finally:
        for client in (first, second, other):
            await client.close()


async def test_an_evicted_generation_never_brings_old_values_back(
    memcached_server: ThrowawayMemcached, key_prefix: str
) -> None:
    client = client_on(memcached_server, key_prefix)
    raw = aiomcache.Client("127.0.0.1", memcached_server.port)
    try:
        await client.set("entry", "before")
        await raw.delete(generation_key(key_prefix))  # as memcached's LRU would
        assert await client.get("entry") is None
        await client.set("another", 1)  # a new token, not a restarted counter
        assert await client.get("entry") is None
        assert await client.get("another") == 1
    finally:
        await raw.close()
        await client.close()


async def test_counters_count_exactly_under_concurrent_increments(
    memcached_server: ThrowawayMemcached, key_prefix: str
) -> None:
    first, second = client_on(memcached_server, key_prefix), client_on(memcached_server,
                                                                        key_prefix)
    try:
        await asyncio.gather(*(client.inc("hits") for client in (first, second)
                               for _ in range(25)))
        assert await first.get("hits") == 50
        assert await second.dec("hits", 10) == 40
        await first.set("text", "abc")
        with pytest.raises(TypeError, match="not an integer"):
            await first.inc("text")
    finally:
        await first.close()
        await second.close()


async def test_a_lease_is_released_only_by_its_owner(
    memcached_server: ThrowawayMemcached, key_prefix: str
) -> None:
    client = client_on(memcached_server, key_prefix)
    try:
        assert await client.add("lease", "mine", timeout=5)
        assert not await client.add("lease", "theirs", timeout=5)
        assert not await client.delete_if_equal("lease", "theirs")
        assert await client.get("lease") == "mine"
        assert await client.delete_if_equal("lease", "mine")
        assert not await client.has("lease")
    finally:
        await client.close()


async def test_values_record_their_lifetime_to_the_millisecond(
    memcached_server: ThrowawayMemcached, key_prefix: str
) -> None:
    client = client_on(memcached_server, key_prefix)
    backend = client.backend
    assert isinstance(backend, GenerationMemcachedBackend)
    try:
        await client.set("short", 1, timeout=0.5)
        await client.set("forever", 2, timeout=0)
        [(short, left), (forever, none)] = await backend.multi_get_with_ttl(
            [key_prefix + "short", key_prefix + "forever"])
        assert short == "1" and left is not None and 0 < left <= 0.501  # recorded to 1 ms
        assert forever == "2" and none is None
    finally:
        await client.close()


async def test_a_value_larger_than_the_server_takes_is_not_stored(
    memcached_server: ThrowawayMemcached, key_prefix: str
) -> None:
    client = client_on(memcached_server, key_prefix)
    try:
        assert not await client.set("huge", "x" * (5 * 1024 * 1024))  # the server's -I is 4m
        assert await client.get("huge") is None
        assert await client.set("small", "x")  # and the client still works
    finally:
        await client.close()


# --- outages --------------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_a_killed_memcached_is_a_miss_not_a_hang(
    throwaway_memcached: ThrowawayMemcached, key_prefix: str
) -> None:
    client = client_on(throwaway_memcached, key_prefix, redis_timeout=0.3, retry_interval=0.1)
    try:
        await client.set("entry", 1)
        assert await client.get("entry") == 1  # the pool now holds open connections
        throwaway_memcached.kill()
        assert await client.get("entry") is None
        assert client.is_down
        throwaway_memcached.start()  # empty: memcached keeps nothing
        await asyncio.sleep(0.2)
        assert await client.set("entry", 2)
        assert await client.get("entry") == 2
    finally:
        await client.close()


async def test_a_cut_off_reply_is_never_read_by_the_next_command(
    throwaway_memcached: ThrowawayMemcached, key_prefix: str
) -> None:
    # One connection, so the next command would get the one whose reply was cut off.
    client = client_on(throwaway_memcached, key_prefix, redis_timeout=0.3, retry_interval=0.1,
                       redis_pool_size=1)
    try:
        await client.set("first", "one")
        await client.set("second", "two")
        throwaway_memcached.stall()
        try:
            assert await client.get("first") is None  # timed out: its reply comes later
        finally:
            throwaway_memcached.unstall()
        await asyncio.sleep(0.2)
        # On a reused connection, this would read the late reply to the read of "first".
        assert await client.get("second") == "two"
        assert await client.get("first") == "one"
    finally:
        await client.close()


async def test_a_stall_is_logged_by_what_happened(
    throwaway_memcached: ThrowawayMemcached, key_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A timeout here has no message: the log line must still say what went wrong.
    caplog.set_level(logging.WARNING, "quart_app.cache")
    client = client_on(throwaway_memcached, key_prefix, redis_timeout=0.3)
    try:
        await client.set("k", "v")
        throwaway_memcached.stall()
        try:
            assert await client.get("k") is None
        finally:
            throwaway_memcached.unstall()
        [logged] = [record.getMessage() for record in caplog.records
                    if "unreachable" in record.getMessage()]
        assert "(TimeoutError)" in logged
    finally:
        await client.close()


def outage_config(server: ThrowawayMemcached, tmp_path: Path) -> dict[str, Any]:
    return {"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": [server.server],
            "CACHE_KEY_PREFIX": "faults:", "CACHE_REDIS_TIMEOUT": 0.3,
            "CACHE_RETRY_INTERVAL": 0.1, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}


async def test_views_run_uncached_while_memcached_is_down_then_cache_again(
    throwaway_memcached: ThrowawayMemcached, tmp_path: Path
) -> None:
    app = create_view_app(outage_config(throwaway_memcached, tmp_path))
    async with app.test_app():
        client = app.test_client()
        await client.get("/probe/plain")
        assert (await client.get("/probe/plain")).headers["Cache-Status"].startswith(
            "quart_app; hit")
        assert (await client.get("/readyz")).status_code == 200
        throwaway_memcached.kill()
        for expected_runs in range(2, 6):
            response = await client.get("/probe/plain")
            assert response.status_code == 200
            assert (await response.get_json())["runs"] == expected_runs
            assert response.headers["Cache-Status"] == UNAVAILABLE
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "memcached unreachable" in (await ready.get_json())["checks"]["cache"]["error"]
        throwaway_memcached.start()
        async with asyncio.timeout(10):
            while True:
                status = (await client.get("/probe/plain")).headers["Cache-Status"]
                if status.startswith("quart_app; hit"):
                    break
                await asyncio.sleep(0.05)


async def test_an_insert_whose_invalidation_memcached_did_not_take_is_not_acknowledged(
    throwaway_memcached: ThrowawayMemcached, tmp_path: Path
) -> None:
    config = outage_config(throwaway_memcached, tmp_path)
    writer, reader = create_view_app(config), create_view_app(config)
    async with writer.test_app(), reader.test_app():
        assert (await (await reader.test_client().get("/api/info")).get_json())["items"] == []
        throwaway_memcached.stall()
        try:
            created = await writer.test_client().post(
                "/api/info", json={"id": 1, "name": "stalled", "money": "1"})
        finally:
            throwaway_memcached.unstall()
        assert created.status_code == 503
        body = await created.get_json()
        assert body["error"] == "cache_unavailable" and body["stored"] is True
        assert created.headers["Location"].endswith("/api/info/1")
        async with asyncio.timeout(10):  # the writer deletes again once memcached answers
            while True:
                page = await (await reader.test_client().get("/api/info")).get_json()
                if [row["id"] for row in page["items"]] == [1]:
                    break
                await asyncio.sleep(0.05)


def test_an_app_on_memcached_guards_its_writes(tmp_path: Path) -> None:
    app: Quart = create_app({"CACHE_TYPE": "MemcachedCache",
                             "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    hooks = [hook.__name__ for hook in app.after_request_funcs[None]]
    assert "refuse_unconfirmed_write" in hooks
