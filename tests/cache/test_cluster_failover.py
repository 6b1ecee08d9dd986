"""RedisClusterCache across a failover: a master is killed, its replica takes over, the app
follows without a restart and serves nothing stale, and the killed node comes back as a
replica. Run with `-s` to see the counts and the recovery times:

    .venv/bin/python -m pytest tests/cache/test_cluster_failover.py -s -q
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quart_app import create_app

from ..support import (
    LOAD_CLIENTS,
    FailoverCounts,
    listed_ids,
    read_your_writes_load,
    until_cached_again,
)
from ..throwaway_cluster import ThrowawayCluster

PREFIX = "failover:"
#: The list view's keys carry its name as their hash tag: they all sit on one master.
LIST_VIEW = b"list_info"


def worker(cluster: ThrowawayCluster, tmp_path: Path, **extra: Any) -> Quart:
    return create_app({
        **cluster.app_config(PREFIX), "CACHE_REDIS_TIMEOUT": 0.3,
        "CACHE_RETRY_INTERVAL": 0.5, "CACHE_LOCAL_ACK_TIMEOUT": 0.3,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **extra,
    })


def keys_on(cluster: ThrowawayCluster, port: int) -> dict[bytes, bytes]:
    node = cluster.client(port)
    try:
        return {key: node.get(key) for key in node.scan_iter(match=PREFIX + "*")}
    finally:
        node.close()


def master_of_the_list_view(cluster: ThrowawayCluster) -> int:
    for port in cluster.masters():
        if any(LIST_VIEW in key for key in keys_on(cluster, port)):
            return port
    raise AssertionError("the list view is cached on no master")


def restore(cluster: ThrowawayCluster, port: int, keys: dict[bytes, bytes]) -> None:
    """Put the node's cache keys back as they were: what a replica that missed the writes
    since holds (replication is asynchronous)."""
    node = cluster.client(port)
    try:
        stale = list(node.scan_iter(match=PREFIX + "*"))
        for key in stale:  # one by one: they may be of several slots
            node.delete(key)
        for key, value in keys.items():
            node.set(key, value)
    finally:
        node.close()


def replica_of(cluster: ThrowawayCluster, master: int) -> int:
    node = cluster.client(master)
    try:
        return int(node.info("replication")["slave0"]["port"])
    finally:
        node.close()


async def test_an_invalidation_the_new_master_never_received_is_not_served_stale(
    throwaway_cluster: ThrowawayCluster, tmp_path: Path
) -> None:
    """The old master acknowledged the insert's invalidation and died before its replica had
    it: after the promotion, the first read finds the entry and the tokens of before the
    insert. The client saw the slot's master change, so it forgets what may be stale first."""
    app = worker(throwaway_cluster, tmp_path, RECEIVERS={"visits": False})
    async with app.test_app():
        client = app.test_client()
        assert (await client.post("/api/info", json={"id": 1, "name": "a", "money": "1"})
                ).status_code == 201
        assert listed_ids(await (await client.get("/api/info")).get_json()) == [1]
        old = master_of_the_list_view(throwaway_cluster)
        replica = replica_of(throwaway_cluster, old)
        before_insert = keys_on(throwaway_cluster, old)
        assert (await client.post("/api/info", json={"id": 2, "name": "b", "money": "2"})
                ).status_code == 201
        throwaway_cluster.kill(old)
        await asyncio.to_thread(throwaway_cluster.wait_for_promotion, old)
        await asyncio.to_thread(restore, throwaway_cluster, replica, before_insert)

        page = await client.get("/api/info")
        assert page.status_code == 200
        assert listed_ids(await page.get_json()) == [2, 1]
        assert (await client.get("/api/info/2")).status_code == 200
        await until_cached_again(app)  # and the cache works on the new master


async def wait_for_the_bus(apps: tuple[Quart, Quart]) -> None:
    buses = [app.extensions["signal_bus"] for app in apps]
    async with asyncio.timeout(15):
        while not all(bus.connected for bus in buses):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("local", [False, True], ids=["cluster", "cluster+local"])
async def test_killing_a_master_under_load_loses_nothing_and_serves_nothing_stale(
    throwaway_cluster: ThrowawayCluster, tmp_path: Path, local: bool
) -> None:
    """Inserts on one worker, reads on the other; the master of the list view (with the local
    tier: of the bus's channel) is killed, its replica promoted, then the node is started
    again and rejoins as a replica."""
    counts, acknowledged, stop = FailoverCounts(), [], asyncio.Event()
    apps = (worker(throwaway_cluster, tmp_path, CACHE_LOCAL=local),
            worker(throwaway_cluster, tmp_path, CACHE_LOCAL=local))
    async with apps[0].test_app(), apps[1].test_app():
        if local:
            await wait_for_the_bus(apps)
        running = asyncio.gather(*(read_your_writes_load(apps, counts, stop, acknowledged, first_id)
                                   for first_id in range(1, LOAD_CLIENTS + 1)))
        await asyncio.sleep(0.5)
        old = (throwaway_cluster.master_of(apps[0].config["SIGNALS_BUS_CHANNEL"]) if local
               else master_of_the_list_view(throwaway_cluster))
        killed = time.monotonic()
        throwaway_cluster.kill(old)
        await asyncio.to_thread(throwaway_cluster.wait_for_promotion, old)
        counts.failover = time.monotonic() - killed
        await until_cached_again(apps[1])
        counts.recovery = time.monotonic() - killed
        if local:
            await wait_for_the_bus(apps)
        recovered_with = counts.acknowledged
        await asyncio.to_thread(throwaway_cluster.launch, old)  # back, as a replica
        await asyncio.to_thread(throwaway_cluster.wait_until_healthy)
        await asyncio.sleep(0.5)
        stop.set()
        await running
        counts.after_recovery = counts.acknowledged - recovered_with
        reader = apps[0].test_client()
        for info_id in acknowledged:
            counts.lost += (await reader.get(f"/api/info/{info_id}")).status_code != 200
    print(f"\nfailover run ({'cluster+local' if local else 'cluster'}): {counts}")
    assert old not in throwaway_cluster.masters()
    assert counts.acknowledged > 0
    assert counts.after_recovery > 0
    assert counts.lost == 0
    assert counts.stale == 0
    assert counts.server_errors == 0
    assert counts.refused == 0


def shard_subscribers(cluster: ThrowawayCluster, port: int, channel: str) -> int:
    node = cluster.client(port)
    try:
        [(_, count)] = node.pubsub_shardnumsub(channel)
        return int(count)
    finally:
        node.close()


async def test_a_demoted_master_loses_the_bus_subscribers_to_the_new_one(
    throwaway_cluster: ThrowawayCluster, tmp_path: Path
) -> None:
    """CLUSTER FAILOVER on a replica demotes its master without killing it: the subscribers
    must move to the promoted replica, or SPUBLISH there would count none of them."""
    apps = (worker(throwaway_cluster, tmp_path, CACHE_LOCAL=True),
            worker(throwaway_cluster, tmp_path, CACHE_LOCAL=True))
    channel = apps[0].config["SIGNALS_BUS_CHANNEL"]
    async with apps[0].test_app(), apps[1].test_app():
        await wait_for_the_bus(apps)
        old = throwaway_cluster.master_of(channel)
        assert shard_subscribers(throwaway_cluster, old, channel) == 2
        new = replica_of(throwaway_cluster, old)
        replica = throwaway_cluster.client(new)
        try:
            replica.execute_command("CLUSTER FAILOVER")
        finally:
            replica.close()
        async with asyncio.timeout(15):
            # (the state lives in other processes: polled)
            while await asyncio.to_thread(throwaway_cluster.master_of, channel) != new:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            while await asyncio.to_thread(shard_subscribers, throwaway_cluster, new,  # noqa: ASYNC110
                                          channel) != 2:
                await asyncio.sleep(0.05)
        await wait_for_the_bus(apps)
        # and an insert on one is read at once on the other, its copy evicted and confirmed
        reader = apps[1].test_client()
        assert (await reader.get("/api/info/9")).status_code == 404
        created = await apps[0].test_client().post(
            "/api/info", json={"id": 9, "name": "n", "money": "1"})
        assert created.status_code in (201, 503)
        assert (await reader.get("/api/info/9")).status_code == 200
        assert apps[0].extensions["signal_bus"].evictions_unconfirmed == 0
