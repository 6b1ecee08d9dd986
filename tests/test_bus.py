"""The Redis signal bus: broadcast signals reach the other processes' receivers, once.

Two apps in one test process stand for two processes: each has its own bus origin, its own
memory cache and its own receivers; they share the Redis server and the database file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from quart import Quart

import quart_app.bus
from quart_app import create_app
from quart_app.dispatch import receiver
from quart_app.extensions import cache
from quart_app.signals import info_inserted

from .support import wait_until
from .throwaway_redis import ThrowawayRedis


def make_app(tmp_path: Path, bus_url: str, channel: str, name: str) -> Quart:
    return create_app({
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "CACHE_KEY_PREFIX": f"{name}:",
        "SIGNALS_BUS_URL": bus_url,
        "SIGNALS_BUS_CHANNEL": channel,
    })


@pytest.fixture
def channel() -> str:
    return f"test-bus-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def two_apps(
    tmp_path: Path, redis_url: str, channel: str
) -> AsyncIterator[tuple[Quart, Quart]]:
    first = make_app(tmp_path, redis_url, channel, "first")
    second = make_app(tmp_path, redis_url, channel, "second")
    async with first.test_app(), second.test_app():
        await wait_until(lambda: first.extensions["signal_bus"].connected
                         and second.extensions["signal_bus"].connected)
        yield first, second


async def test_an_insert_reaches_every_process_once_and_never_echoes(
    two_apps: tuple[Quart, Quart]
) -> None:
    first, second = two_apps
    heard: list[tuple[str, int]] = []
    for name, app in (("first", first), ("second", second)):
        @receiver(info_inserted, app, dispatch_uid=f"test.{name}")
        async def record(sender: Quart, row: Any, name: str = name, **extra: Any) -> None:
            heard.append((name, row.id))

    response = await first.test_client().post("/api/info",
                                              json={"id": 7, "name": "bus", "money": "1.25"})
    assert response.status_code == 201
    await wait_until(lambda: ("second", 7) in heard)
    await asyncio.sleep(0.2)  # room for a duplicate or an echo to show up
    assert sorted(heard) == [("first", 7), ("second", 7)]
    assert first.extensions["signal_bus"].published == 1
    assert first.extensions["signal_bus"].delivered == 0


async def test_remote_inserts_invalidate_each_process_memory_cache(
    two_apps: tuple[Quart, Quart]
) -> None:
    first, second = two_apps
    reader = second.test_client()
    assert (await (await reader.get("/api/info")).get_json())["items"] == []  # now cached
    await first.test_client().post("/api/info", json={"id": 1, "name": "x", "money": 1})

    async def second_sees_it() -> bool:
        page = await (await reader.get("/api/info")).get_json()
        return [row["id"] for row in page["items"]] == [1]

    async with asyncio.timeout(5):
        while not await second_sees_it():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_malformed_messages_are_dropped_and_the_subscriber_survives(
    two_apps: tuple[Quart, Quart], redis_url: str, channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _first, second = two_apps
    heard: list[int] = []

    @receiver(info_inserted, second, dispatch_uid="test.heard")
    async def record(sender: Quart, row: Any, **extra: Any) -> None:
        heard.append(row.id)

    raw = redis.Redis.from_url(redis_url)
    bad = [b"not json", b"[1, 2]", json.dumps({"v": 99, "origin": "x"}).encode(),
           json.dumps({"v": 1, "origin": "x", "signal": "no-such-signal", "kwargs": {}}).encode(),
           json.dumps({"v": 1, "origin": "x", "signal": "info-inserted",
                       "kwargs": {"row": {"id": 1, "name": "n", "money": "lots"}}}).encode(),
           json.dumps({"v": 1, "origin": "x", "signal": "info-inserted", "kwargs": {}}).encode()]
    try:
        for message in bad:
            await raw.publish(channel, message)
        good = {"v": 1, "origin": "elsewhere", "signal": "info-inserted",
                "kwargs": {"row": {"id": 42, "name": "ok", "money": "1.00"}}}
        await raw.publish(channel, json.dumps(good))
    finally:
        await raw.aclose()
    await wait_until(lambda: heard == [42])
    assert second.extensions["signal_bus"].dropped == len(bad)
    assert sum("dropped a malformed message" in r.getMessage() for r in caplog.records) >= len(bad)


async def test_the_subscriber_reconnects_after_a_redis_restart(
    throwaway_redis: ThrowawayRedis, tmp_path: Path, channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="quart_app.bus")
    first = make_app(tmp_path, throwaway_redis.url, channel, "first")
    second = make_app(tmp_path, throwaway_redis.url, channel, "second")
    reconnects: list[str] = []
    heard: list[int] = []
    async with first.test_app(), second.test_app():
        bus = second.extensions["signal_bus"]

        async def note() -> None:
            reconnects.append("again")

        @receiver(info_inserted, second, dispatch_uid="test.heard")
        async def record(sender: Quart, row: Any, **extra: Any) -> None:
            heard.append(row.id)

        await wait_until(lambda: bus.connected and first.extensions["signal_bus"].connected)
        bus.on_reconnect(note)
        throwaway_redis.kill()
        await wait_until(lambda: not bus.connected)
        # An insert while the bus is down is stored, but not acknowledged: the other
        # processes could not be told.
        client = first.test_client()
        during = await client.post("/api/info", json={"id": 1, "name": "a", "money": 1})
        assert during.status_code == 503 and (await during.get_json())["stored"] is True
        throwaway_redis.start()
        await wait_until(lambda: bus.connected and first.extensions["signal_bus"].connected,
                         timeout=10)
        # Once for the subscription; maybe again when the first process, whose publish was
        # lost in the outage, tells everyone to resync.
        assert reconnects[0] == "again" and set(reconnects) == {"again"}
        assert (await client.post("/api/info", json={"id": 2, "name": "b",
                                                     "money": 1})).status_code == 201
        await wait_until(lambda: heard == [2])


def test_bus_of_finds_the_apps_bus_whose_relay_dispatch_uses(
    tmp_path: Path, channel: str
) -> None:
    app = make_app(tmp_path, "redis://127.0.0.1:6379/0", channel, "found")
    bus = quart_app.bus.bus_of(app)
    assert isinstance(bus, quart_app.bus.SignalBus)
    assert app.extensions["signal_bus"] is bus
    assert app.extensions["signal_dispatch"].relay is bus.relay
    alone = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'alone.sqlite3'}"})
    assert quart_app.bus.bus_of(alone) is None


def test_many_workers_with_a_memory_cache_and_no_bus_warn(
    caplog: pytest.LogCaptureFixture
) -> None:
    create_app({"WORKERS": 2})
    assert any("invalidates only the cache of the worker" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    create_app({"WORKERS": 2, "CACHE_TYPE": "RedisCache"})
    create_app({"WORKERS": 2, "SIGNALS_BUS_URL": "redis://127.0.0.1:6379/0"})
    assert not any("invalidates only" in r.getMessage() for r in caplog.records)


async def test_a_memory_cache_serves_nothing_while_the_bus_is_down(
    throwaway_redis: ThrowawayRedis, tmp_path: Path, channel: str
) -> None:
    app = make_app(tmp_path, throwaway_redis.url, channel, "solo")
    async with app.test_app():
        bus = app.extensions["signal_bus"]
        cache_client = cache.client_for(app)
        await wait_until(lambda: bus.connected)
        assert not cache_client.is_suspended
        await cache_client.set("page", "cached")
        throwaway_redis.kill()
        await wait_until(lambda: not bus.connected)
        assert cache_client.is_suspended
        assert await cache_client.get("page") is None  # an invalidation could be missed now
        throwaway_redis.start()
        await wait_until(lambda: bus.connected, timeout=10)
        assert not cache_client.is_suspended
        assert await cache_client.get("page") is None  # cleared before serving again
        await cache_client.set("page", "fresh")
        assert await cache_client.get("page") == "fresh"


async def test_origin_only_receivers_run_once_per_insert_across_processes(
    two_apps: tuple[Quart, Quart], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quart_app.audit")
    first, second = two_apps
    heard: list[str] = []
    for name, app in (("first", first), ("second", second)):
        @receiver(info_inserted, app, dispatch_uid=f"test.once.{name}", origin_only=True)
        async def once(sender: Quart, name: str = name, **extra: Any) -> None:
            heard.append(name)

    await first.test_client().post("/api/info", json={"id": 3, "name": "o", "money": 1})
    await wait_until(lambda: sum("id=3" in r.getMessage() for r in caplog.records) == 2)
    audit = sorted(r.getMessage() for r in caplog.records if r.name == "quart_app.audit")
    assert audit == ["info inserted: id=3 name='o' money=1.00",
                     "info inserted: id=3 name='o' money=1.00 (in another process)"]
    assert heard == ["first"]
    # The shipped insert counter is origin-only too: one insert, counted once.
    stats = await (await first.test_client().get("/api/stats")).get_json()
    assert stats["info_inserts"] == 1


async def test_readyz_reports_the_bus(
    throwaway_redis: ThrowawayRedis, tmp_path: Path, channel: str
) -> None:
    app = make_app(tmp_path, throwaway_redis.url, channel, "ready")
    async with app.test_app():
        client = app.test_client()
        await wait_until(lambda: app.extensions["signal_bus"].connected)
        body = await (await client.get("/readyz")).get_json()
        assert body["checks"]["signal_bus"]["ok"] is True
        throwaway_redis.kill()
        await wait_until(lambda: not app.extensions["signal_bus"].connected)
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert "signal_bus" in (await response.get_json())["down"]


async def test_remote_signals_arriving_faster_than_their_receivers_empty_the_caches(
    tmp_path: Path, redis_url: str, channel: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(quart_app.bus, "DELIVERY_QUEUE_SIZE", 1)
    first = make_app(tmp_path, redis_url, channel, "first")
    second = make_app(tmp_path, redis_url, channel, "second")
    busy: list[int] = []

    @receiver(info_inserted, second, dispatch_uid="test.stuck_remote")
    async def stuck(sender: Quart, row: Any, **extra: Any) -> None:
        busy.append(row.id)
        await asyncio.sleep(3)

    async with first.test_app(), second.test_app():
        bus = second.extensions["signal_bus"]
        await wait_until(lambda: bus.connected and first.extensions["signal_bus"].connected)
        writer, reader = first.test_client(), second.test_client()
        await writer.post("/api/info", json={"id": 1, "name": "t", "money": "1"})
        await wait_until(lambda: busy == [1])  # invalidated; its receivers now stuck
        assert [row["id"] for row in (await (await reader.get("/api/info")).get_json())[
            "items"]] == [1]  # cached in the second process
        # The second insert's signal waits in the queue, the third's finds it full: its
        # invalidation will never run, so the second process must forget its cache.
        for info_id in (2, 3):
            await writer.post("/api/info", json={"id": info_id, "name": "t", "money": "1"})
        await wait_until(lambda: bus.dropped == 1)
        page = await (await reader.get("/api/info")).get_json()
        assert [row["id"] for row in page["items"]] == [3, 2, 1]


async def listed(app: Quart) -> list[int]:
    page = await (await app.test_client().get("/api/info")).get_json()
    return [row["id"] for row in page["items"]]


async def test_after_a_redis_restart_the_first_publish_still_reaches_everyone(
    throwaway_redis: ThrowawayRedis, tmp_path: Path, channel: str
) -> None:
    # The publisher's pooled connection died with the old server; the subscribers came back
    # on their own. Its next publish must not be lost on the dead connection.
    first = make_app(tmp_path, throwaway_redis.url, channel, "first")
    second = make_app(tmp_path, throwaway_redis.url, channel, "second")
    async with first.test_app(), second.test_app():
        buses = (first.extensions["signal_bus"], second.extensions["signal_bus"])
        await wait_until(lambda: all(bus.connected for bus in buses))
        writer = first.test_client()
        assert (await writer.post("/api/info", json={"id": 1, "name": "a", "money": 1})
                ).status_code == 201  # the pool now holds a connection
        await wait_until(lambda: buses[1].delivered == 1)
        throwaway_redis.kill()
        await wait_until(lambda: not buses[1].connected)
        await asyncio.to_thread(throwaway_redis.start)
        await wait_until(lambda: buses[1].connected, timeout=10)
        assert await listed(second) == [1]  # cached in the second process
        assert (await writer.post("/api/info", json={"id": 2, "name": "b", "money": 1})
                ).status_code == 201
        await wait_until(lambda: buses[1].delivered == 2)
        assert await listed(second) == [2, 1]
        assert buses[0].connected


async def test_a_publish_that_fails_makes_the_others_forget_and_readyz_say_so(
    throwaway_redis: ThrowawayRedis, tmp_path: Path, channel: str
) -> None:
    # Redis refuses writes for a while (CLIENT PAUSE WRITE blocks PUBLISH) but every
    # subscription stays up: nobody else notices the lost message unless told.
    config = {"CACHE_LOCAL_ACK_TIMEOUT": 0.3}
    first = make_app(tmp_path, throwaway_redis.url, channel, "first")
    second = make_app(tmp_path, throwaway_redis.url, channel, "second")
    first.config.update(config)
    admin = redis.Redis.from_url(throwaway_redis.url)
    try:
        async with first.test_app(), second.test_app():
            buses = (first.extensions["signal_bus"], second.extensions["signal_bus"])
            await wait_until(lambda: all(bus.connected for bus in buses))
            assert await listed(second) == []  # cached in the second process
            await admin.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
            created = await first.test_client().post(
                "/api/info", json={"id": 1, "name": "a", "money": 1})
            # Stored, and fresh where it was made, but the others were not told: no 201.
            assert created.status_code == 503 and (await created.get_json())["stored"] is True
            assert (await second.test_client().get("/readyz")).status_code == 200
            ready = await first.test_client().get("/readyz")
            assert ready.status_code == 503
            assert "signal_bus" in (await ready.get_json())["down"]
            # When publishing works again, the second process is told to forget its copies.
            await wait_until(lambda: buses[0].connected, timeout=10)
            assert await listed(second) == [1]
    finally:
        await admin.aclose()
