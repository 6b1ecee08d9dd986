"""CACHE_LOCAL: the in-process copy in front of Redis, and its evictions over the bus.

Two apps in one test process stand for two processes: each has its own local tier and bus
origin; they share the Redis server (cache and bus) and a SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from quart import Quart

from quart_app import create_app
from quart_app.cache import CacheClient
from quart_app.cache.local_tier import LocalTier
from quart_app.dispatch import is_remote_delivery, receiver
from quart_app.errors import ConfigError
from quart_app.extensions import cache
from quart_app.signals import info_inserted

from ..services import REDIS_URL, forget_redis_prefix, require_service
from ..support import settings_from, wait_until
from ..throwaway_redis import ThrowawayRedis


def tiered_app(tmp_path: Path, redis_url: str, prefix: str, channel: str, **extra: Any) -> Quart:
    return create_app({
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": prefix,
        "CACHE_LOCAL": True,
        "SIGNALS_BUS_CHANNEL": channel,
        **extra,
    })


def tier_of(app: Quart) -> LocalTier:
    tier = cache.client_for(app).local
    assert tier is not None
    return tier


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of the test's own, and its keys removed afterwards."""
    prefix = f"tier-{uuid.uuid4().hex[:8]}:"
    yield prefix
    forget_redis_prefix(redis_url, prefix)


@pytest.fixture
def channel() -> str:
    return f"tier-bus-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def two_apps(
    tmp_path: Path, redis_url: str, prefix: str, channel: str
) -> AsyncIterator[tuple[Quart, Quart]]:
    first = tiered_app(tmp_path, redis_url, prefix, channel)
    second = tiered_app(tmp_path, redis_url, prefix, channel)
    async with first.test_app(), second.test_app():
        await wait_until(lambda: tier_of(first).serving and tier_of(second).serving)
        yield first, second


async def listed_ids(app: Quart) -> list[int]:
    response = await app.test_client().get("/api/info")
    assert response.status_code == 200
    return [row["id"] for row in (await response.get_json())["items"]]


async def copied_ids(app: Quart) -> list[int]:
    """The list, read a second time: the whole answer (entry and tokens) is served from the
    copy the first read made."""
    await listed_ids(app)
    hits = tier_of(app).hits
    ids = await listed_ids(app)
    assert tier_of(app).hits - hits == 4  # the entry and its three tokens
    return ids


async def insert_then_read(writer: Quart, reader: Quart, info_id: int) -> None:
    """Rows 1..info_id-1 exist; `reader` copies the list, `writer` inserts `info_id`, and
    `reader`'s very next read lists it."""
    assert await copied_ids(reader) == list(range(info_id - 1, 0, -1))
    created = await writer.test_client().post(
        "/api/info", json={"id": info_id, "name": "t", "money": "1"})
    assert created.status_code == 201
    assert await listed_ids(reader) == list(range(info_id, 0, -1))


# --- configuration --------------------------------------------------------------------------


def test_the_local_tier_needs_redis() -> None:
    with pytest.raises(ConfigError, match="CACHE_LOCAL = True: expected CACHE_TYPE = 'RedisCache'"):
        create_app({"CACHE_LOCAL": True})


def test_the_local_tier_uses_the_cache_redis_as_its_bus_by_default(tmp_path: Path) -> None:
    app = create_app({"CACHE_TYPE": "RedisCache", "CACHE_LOCAL": True,
                      "CACHE_REDIS_URL": "redis://127.0.0.1:6379/3",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert app.config["SIGNALS_BUS_URL"] == "redis://127.0.0.1:6379/3"
    assert "signal_bus" in app.extensions


def test_the_local_tier_is_off_by_default(tmp_path: Path) -> None:
    app = create_app({"CACHE_TYPE": "RedisCache",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert app.config["CACHE_LOCAL"] is False
    assert "signal_bus" not in app.extensions


# --- the tier on its own ----------------------------------------------------------------------


def test_a_copy_read_across_an_eviction_is_not_kept() -> None:
    tier = LocalTier("p:", max_entries=10, max_age=30)
    asyncio.run(tier.resume())
    epoch = tier.epoch
    tier.evict(["p:view:gen"])  # arrives while the read of p:view:gen is in flight
    tier.keep("p:view:gen", '"old-token"', None, epoch)
    assert tier.lookup("p:view:gen") is None
    tier.keep("p:view:gen", '"new-token"', None, tier.epoch)
    assert tier.lookup("p:view:gen") == '"new-token"'


def test_only_the_decorators_keys_are_copied() -> None:
    tier = LocalTier("p:", max_entries=10, max_age=30)
    assert tier.holds("p:view:app.list:abc") and tier.holds("p:memo:f:gen")
    assert not tier.holds("p:lease:abc") and not tier.holds("p:visits:/")
    assert not tier.holds("other:view:app.list:abc")


@pytest.fixture
async def tiered_client(redis_url: str, prefix: str) -> AsyncIterator[CacheClient]:
    require_service("Redis", REDIS_URL)
    client = CacheClient(settings_from(
        {"CACHE_TYPE": "RedisCache", "CACHE_KEY_PREFIX": prefix, "CACHE_REDIS_URL": redis_url},
        local=True,
    ))
    assert client.local is not None
    await client.local.resume()
    try:
        yield client
    finally:
        await client.clear()
        await client.close()


async def test_a_repeated_read_is_served_without_redis(
    tiered_client: CacheClient, redis_client: redis.Redis, prefix: str
) -> None:
    await tiered_client.set("view:page", {"body": "v1"})
    await redis_client.set(prefix + "view:page", json.dumps({"body": "changed behind"}))
    # The copy this process made when it wrote: Redis is not asked.
    assert await tiered_client.get("view:page") == {"body": "v1"}
    assert await tiered_client.get_many("view:page", "view:gen") == [{"body": "v1"}, None]
    await tiered_client.delete("view:page")
    assert await tiered_client.get("view:page") is None


async def test_a_read_an_eviction_crossed_is_served_but_not_copied(
    tiered_client: CacheClient, redis_client: redis.Redis, prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await redis_client.set(prefix + "view:gen", json.dumps("token-1"))
    backend = tiered_client.backend
    read = backend.multi_get_with_ttl
    tier = tiered_client.local
    assert tier is not None

    async def read_then_evicted(keys: list[str]) -> list[tuple[str | None, float | None]]:
        found = await read(keys)
        tier.evict(keys)  # the eviction arrives while the answer is on its way
        return found

    monkeypatch.setattr(backend, "multi_get_with_ttl", read_then_evicted)
    assert await tiered_client.get("view:gen") == "token-1"
    assert tier.stats()["entries"] == 0
    monkeypatch.setattr(backend, "multi_get_with_ttl", read)
    assert await tiered_client.get("view:gen") == "token-1"
    assert tier.stats()["entries"] == 1


async def test_keys_outside_the_decorators_always_go_to_redis(
    tiered_client: CacheClient, redis_client: redis.Redis, prefix: str
) -> None:
    await tiered_client.set("counter", 1)
    await redis_client.set(prefix + "counter", "2")
    assert await tiered_client.get("counter") == 2


async def test_a_copy_lives_no_longer_than_its_key_in_redis(
    tiered_client: CacheClient, redis_client: redis.Redis, prefix: str
) -> None:
    await redis_client.set(prefix + "view:short", json.dumps("v"), px=300)
    assert await tiered_client.get("view:short") == "v"  # read through, copied
    assert tiered_client.local is not None and tiered_client.local.hits == 0
    assert await tiered_client.get("view:short") == "v"
    assert tiered_client.local.hits == 1
    await asyncio.sleep(0.4)
    assert await tiered_client.get("view:short") is None


# --- across processes -----------------------------------------------------------------------


async def test_reads_hit_the_local_copy_and_an_insert_anywhere_is_read_at_once_everywhere(
    two_apps: tuple[Quart, Quart],
) -> None:
    first, second = two_apps
    for info_id in range(1, 21):
        writer, reader = (first, second) if info_id % 2 else (second, first)
        # No waiting: the insert's response came after every process dropped its copy.
        await insert_then_read(writer, reader, info_id)
    bus = first.extensions["signal_bus"]
    assert bus.evictions_announced > 0 and bus.evictions_unconfirmed == 0


async def test_a_slow_remote_receiver_does_not_hold_up_evictions(
    two_apps: tuple[Quart, Quart],
) -> None:
    first, second = two_apps
    started: list[int] = []

    # Slower than CACHE_LOCAL_ACK_TIMEOUT (1 s): were evictions queued behind it, the next
    # insert's eviction would go unconfirmed and the second process would serve its copy.
    @receiver(info_inserted, second, dispatch_uid="test.slow_remote")
    async def slow(sender: Quart, row: Any, **extra: Any) -> None:
        if is_remote_delivery():
            started.append(row.id)
            await asyncio.sleep(1.5)

    for info_id in range(1, 4):
        await insert_then_read(first, second, info_id)
        await wait_until(lambda: started)  # the second process is busy from here on
    assert first.extensions["signal_bus"].evictions_unconfirmed == 0


async def test_an_eviction_nobody_confirms_delays_the_insert_at_most_the_ack_timeout(
    tmp_path: Path, redis_url: str, prefix: str, channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = tiered_app(tmp_path, redis_url, prefix, channel, CACHE_LOCAL_ACK_TIMEOUT=0.3)
    mute = redis.Redis.from_url(redis_url)
    pubsub = mute.pubsub()
    await pubsub.subscribe(channel)  # a subscriber that is not a quart_app: it never confirms
    try:
        async with app.test_app():
            await wait_until(lambda: tier_of(app).serving)
            assert await listed_ids(app) == []
            created = await app.test_client().post(
                "/api/info", json={"id": 1, "name": "t", "money": "1"})
            assert created.status_code == 201
            assert await listed_ids(app) == [1]
            bus = app.extensions["signal_bus"]
            assert bus.evictions_unconfirmed >= 1
            assert "did not confirm an eviction within 0.3 s" in caplog.text
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await mute.aclose()


async def test_the_tier_serves_nothing_while_the_bus_is_down_and_starts_empty(
    tmp_path: Path, throwaway_redis: ThrowawayRedis, prefix: str, channel: str,
) -> None:
    first = tiered_app(tmp_path, throwaway_redis.url, prefix, channel,
                       CACHE_RETRY_INTERVAL=0.1)
    second = tiered_app(tmp_path, throwaway_redis.url, prefix, channel,
                        CACHE_RETRY_INTERVAL=0.1)
    async with first.test_app(), second.test_app():
        await wait_until(lambda: tier_of(first).serving and tier_of(second).serving)
        assert await listed_ids(second) == []
        assert tier_of(second).stats()["entries"] > 0
        throwaway_redis.kill()
        await wait_until(lambda: not tier_of(second).serving)
        # This insert's invalidation and eviction are both lost: Redis is down. The row is
        # stored, and the answer says its invalidation is still to come.
        created = await first.test_client().post(
            "/api/info", json={"id": 1, "name": "t", "money": "1"})
        assert created.status_code == 503 and (await created.get_json())["stored"] is True
        assert await listed_ids(second) == [1]  # uncached, not the old copy
        throwaway_redis.start()
        await wait_until(lambda: tier_of(second).serving, timeout=10)
        assert await listed_ids(second) == [1]


async def test_an_insert_answers_only_after_every_process_dropped_its_copy(
    two_apps: tuple[Quart, Quart], monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = two_apps
    bus = second.extensions["signal_bus"]
    deliver = bus._deliver

    async def late(raw: bytes | str) -> None:
        await asyncio.sleep(0.3)  # the second process is slow to read the eviction
        await deliver(raw)

    monkeypatch.setattr(bus, "_deliver", late)
    for info_id in range(1, 4):
        await insert_then_read(first, second, info_id)


async def test_a_process_whose_subscription_dropped_forgets_its_copies(
    two_apps: tuple[Quart, Quart], redis_url: str,
) -> None:
    first, second = two_apps
    bus = second.extensions["signal_bus"]
    assert await copied_ids(second) == []
    admin = redis.Redis.from_url(redis_url)
    try:
        for client in await admin.client_list(_type="pubsub"):
            if client["name"] == f"quart_app-bus-{bus.origin[:12]}":
                await admin.client_kill_filter(_id=client["id"])
    finally:
        await admin.aclose()
    await wait_until(lambda: not bus.connected)
    # Nobody tells the second process about this insert: it is not subscribed.
    created = await first.test_client().post(
        "/api/info", json={"id": 1, "name": "t", "money": "1"})
    assert created.status_code == 201
    await wait_until(lambda: bus.connected and tier_of(second).serving)
    assert await listed_ids(second) == [1]


async def test_a_bad_eviction_message_is_dropped_and_the_bus_keeps_working(
    two_apps: tuple[Quart, Quart], redis_url: str, channel: str, prefix: str,
) -> None:
    first, second = two_apps
    publisher = redis.Redis.from_url(redis_url)
    try:
        await publisher.publish(channel, json.dumps(
            {"v": 1, "origin": "elsewhere", "ack": {"not": "a list name"},
             "evict": {"prefix": prefix, "keys": None}}))
    finally:
        await publisher.aclose()
    await wait_until(lambda: second.extensions["signal_bus"].dropped == 1)
    assert await copied_ids(second) == []
    created = await first.test_client().post(
        "/api/info", json={"id": 1, "name": "t", "money": "1"})
    assert created.status_code == 201
    assert await listed_ids(second) == [1]
    assert first.extensions["signal_bus"].evictions_unconfirmed == 0


async def test_a_subscriber_that_fails_unexpectedly_subscribes_again_with_empty_copies(
    two_apps: tuple[Quart, Quart], monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = two_apps
    bus = second.extensions["signal_bus"]
    deliver = bus._deliver
    failures: list[str] = []

    async def fail_once(raw: bytes | str) -> None:
        if not failures:
            failures.append("failed")
            raise RuntimeError("a bug, not an outage")
        await deliver(raw)

    monkeypatch.setattr(bus, "_deliver", fail_once)
    assert await copied_ids(second) == []
    created = await first.test_client().post(
        "/api/info", json={"id": 1, "name": "t", "money": "1"})
    assert created.status_code == 201 and failures
    await wait_until(lambda: bus.connected and tier_of(second).serving)
    assert await listed_ids(second) == [1]


async def test_a_remote_insert_is_not_invalidated_again_where_redis_is_shared(
    two_apps: tuple[Quart, Quart],
) -> None:
    first, second = two_apps
    created = await first.test_client().post(
        "/api/info", json={"id": 1, "name": "t", "money": "1"})
    assert created.status_code == 201
    assert first.extensions["signal_bus"].evictions_announced == 2  # the list and the row
    await wait_until(lambda: second.extensions["signal_bus"].delivered == 1)
    await asyncio.sleep(0.1)  # room for the remote receivers to finish
    # The origin already invalidated the shared Redis and every local copy.
    assert second.extensions["signal_bus"].evictions_announced == 0


async def test_an_insert_on_a_stalled_redis_is_answered_before_the_stall_ends(
    tmp_path: Path, throwaway_redis: ThrowawayRedis, prefix: str, channel: str,
) -> None:
    # SIGSTOP: connections are accepted, nothing is answered. The insert's deletes, its
    # eviction and its bus message each give up after their own timeout (0.3 s here), so
    # the insert answers (503: its invalidation is not confirmed) while Redis is stalled.
    app = tiered_app(tmp_path, throwaway_redis.url, prefix, channel,
                     CACHE_REDIS_TIMEOUT=0.3, CACHE_LOCAL_ACK_TIMEOUT=0.3)
    async with app.test_app():
        await wait_until(lambda: tier_of(app).serving)
        assert await listed_ids(app) == []
        throwaway_redis.stall()
        try:
            # The bound: well under the 5 s the bus's socket timeout allowed before.
            created = await asyncio.wait_for(app.test_client().post(
                "/api/info", json={"id": 1, "name": "s", "money": "1"}), timeout=4)
        finally:
            throwaway_redis.unstall()
        assert created.status_code == 503
        assert (await created.get_json())["stored"] is True


async def test_after_a_redis_restart_evictions_are_confirmed_at_once(
    tmp_path: Path, throwaway_redis: ThrowawayRedis, prefix: str, channel: str,
) -> None:
    # The bus's pooled connections died with the old server: the eviction's publish and the
    # other process's confirmation must each go out on a fresh one, not time out.
    first = tiered_app(tmp_path, throwaway_redis.url, prefix, channel,
                       CACHE_RETRY_INTERVAL=0.1)
    second = tiered_app(tmp_path, throwaway_redis.url, prefix, channel,
                        CACHE_RETRY_INTERVAL=0.1)
    async with first.test_app(), second.test_app():
        await wait_until(lambda: tier_of(first).serving and tier_of(second).serving)
        await insert_then_read(first, second, 1)  # the pools now hold connections
        throwaway_redis.kill()
        await wait_until(lambda: not tier_of(second).serving)
        await asyncio.to_thread(throwaway_redis.start)
        await wait_until(lambda: tier_of(first).serving and tier_of(second).serving,
                         timeout=10)
        bus = first.extensions["signal_bus"]
        unconfirmed = bus.evictions_unconfirmed
        await insert_then_read(first, second, 2)
        await insert_then_read(second, first, 3)
        assert bus.evictions_unconfirmed == unconfirmed
        assert second.extensions["signal_bus"].evictions_unconfirmed == 0
