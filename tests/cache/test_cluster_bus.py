"""The signal bus on a Redis Cluster (sharded pub/sub): signals relayed between processes,
the local tier's evictions confirmed by exactly as many processes as are subscribed.

Two or three apps in one test process stand for as many processes, on a throwaway cluster.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from redis.asyncio.cluster import ClusterNode, RedisCluster

from quart_app import create_app
from quart_app.dispatch import receiver
from quart_app.signals import info_inserted

from ..support import an_insert_evicts_the_local_copy_on_the_other, wait_until
from ..throwaway_cluster import ThrowawayCluster


@pytest.fixture
def prefix() -> str:
    return f"cluster-bus-{uuid.uuid4().hex[:8]}:"


def bus_app(cluster: ThrowawayCluster, tmp_path: Path, prefix: str, name: str,
            **extra: Any) -> Quart:
    return create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
                       "SIGNALS_BUS_CHANNEL": f"{prefix}signals",
                       "CACHE_KEY_PREFIX": f"{prefix}{name}:", **extra})


@contextlib.asynccontextmanager
async def serving(*apps: Quart) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.test_app())
        await wait_until(lambda: all(app.extensions["signal_bus"].connected for app in apps))
        yield


@pytest.fixture
async def raw_cluster(shared_cluster: ThrowawayCluster) -> AsyncIterator[RedisCluster]:
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port)
                                         for port in shared_cluster.ports])
    try:
        yield client
    finally:
        await client.aclose()


async def test_an_insert_reaches_the_other_process_and_its_memory_cache_forgets(
    shared_cluster: ThrowawayCluster, tmp_path: Path, prefix: str
) -> None:
    first, second = (bus_app(shared_cluster, tmp_path, prefix, name,
                             SIGNALS_BUS_URL=shared_cluster.bus_url)
                     for name in ("first", "second"))
    heard: list[tuple[str, int]] = []
    async with serving(first, second):
        for name, app in (("first", first), ("second", second)):
            @receiver(info_inserted, app, dispatch_uid=f"test.{name}")
            async def record(sender: Quart, row: Any, name: str = name, **extra: Any) -> None:
                heard.append((name, row.id))

        reader = second.test_client()
        assert (await (await reader.get("/api/info")).get_json())["items"] == []  # cached
        created = await first.test_client().post("/api/info",
                                                  json={"id": 3, "name": "c", "money": "1"})
        assert created.status_code == 201
        await wait_until(lambda: ("second", 3) in heard)
        assert sorted(heard) == [("first", 3), ("second", 3)]
        page = await (await reader.get("/api/info")).get_json()
        assert [row["id"] for row in page["items"]] == [3]


async def test_spublish_counts_every_subscribed_process_exactly(
    shared_cluster: ThrowawayCluster, tmp_path: Path, prefix: str, raw_cluster: RedisCluster
) -> None:
    first, second, third = [bus_app(shared_cluster, tmp_path, prefix, name,
                                    **shared_cluster.app_config(f"{prefix}{name}:"),
                                    CACHE_LOCAL=True)
                            for name in ("first", "second", "third")]
    channel = f"{prefix}signals"
    assert first.config["SIGNALS_BUS_URL"] == shared_cluster.bus_url
    async with serving(first, second):
        async with serving(third):
            # Every process on the master of the channel's slot, none elsewhere.
            master = shared_cluster.master_of(channel)
            for port in shared_cluster.masters():
                node = shared_cluster.client(port)
                try:
                    [(_, subscribers)] = node.pubsub_shardnumsub(channel)
                finally:
                    node.close()
                assert subscribers == (3 if port == master else 0)
            assert await raw_cluster.spublish(channel, "not a message") == 3
            buses = [app.extensions["signal_bus"] for app in (first, second, third)]
            await wait_until(lambda: all(bus.dropped == 1 for bus in buses))
            await buses[0].announce_eviction(f"{prefix}first:", None)
            assert buses[0].evictions_announced == 1
            assert buses[0].evictions_unconfirmed == 0
        assert await raw_cluster.spublish(channel, "not a message") == 2
        await buses[1].announce_eviction(f"{prefix}second:", None)
        assert buses[1].evictions_unconfirmed == 0


async def test_with_the_local_tier_an_insert_is_read_everywhere_over_the_cluster_bus(
    shared_cluster: ThrowawayCluster, tmp_path: Path, prefix: str
) -> None:
    first, second = (bus_app(shared_cluster, tmp_path, prefix, "app",
                             **shared_cluster.app_config(f"{prefix}app:"), CACHE_LOCAL=True)
                     for _ in range(2))
    async with serving(first, second):
        await an_insert_evicts_the_local_copy_on_the_other(first, second)
