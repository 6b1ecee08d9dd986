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

from ..support import (
    LOAD_CLIENTS,
    FailoverCounts,
    an_insert_is_read_at_once_on_the_other,
    assert_the_failover_lost_nothing,
    count_the_lost,
    failover_worker,
    keys_on,
    listed_ids,
    read_your_writes_load,
    restore,
    until_cached_again,
    wait_for_the_bus,
)
from ..throwaway_cluster import ThrowawayCluster

PREFIX = "failover:"
#: The list view's keys carry its name as their hash tag: they all sit on one master.
LIST_VIEW = b"list_info"


def worker(cluster: ThrowawayCluster, tmp_path: Path, **extra: Any) -> Quart:
    return failover_worker(cluster, tmp_path, PREFIX, **extra)


def master_of_the_list_view(cluster: ThrowawayCluster) -> int:
    for port in cluster.masters():
        if any(LIST_VIEW in key for key in keys_on(cluster, port, PREFIX)):
            return port
    raise AssertionError("the list view is cached on no master")


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
        before_insert = keys_on(throwaway_cluster, old, PREFIX)
        assert (await client.post("/api/info", json={"id": 2, "name": "b", "money": "2"})
                ).status_code == 201
        throwaway_cluster.kill(old)
        await asyncio.to_thread(throwaway_cluster.wait_for_promotion, old)
        await asyncio.to_thread(restore, throwaway_cluster, replica, PREFIX, before_insert)

        page = await client.get("/api/info")
        assert page.status_code == 200
        assert listed_ids(await page.get_json()) == [2, 1]
        assert (await client.get("/api/info/2")).status_code == 200
        await until_cached_again(app)  # and the cache works on the new master


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
        await count_the_lost(apps[0], counts, acknowledged)
    print(f"\nfailover run ({'cluster+local' if local else 'cluster'}): {counts}")
    assert old not in throwaway_cluster.masters()
    assert_the_failover_lost_nothing(counts)


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
        await an_insert_is_read_at_once_on_the_other(apps)
        assert apps[0].extensions["signal_bus"].evictions_unconfirmed == 0
