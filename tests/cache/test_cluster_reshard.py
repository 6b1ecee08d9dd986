"""RedisClusterCache while a slot moves between masters (a reshard, as `redis-cli --cluster
reshard` makes it): the slot holding a view's entry and tokens is moved key by key, and back,
while two workers take inserts and reads. Nothing stale is read after an acknowledged insert,
nothing answers 500, and the view is cached again on its new master. Run with `-s` to see the
counts:

    .venv/bin/python -m pytest tests/cache/test_cluster_reshard.py -s -q
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quart_app import create_app
from quart_app.cache import CacheClient, CacheSettings
from quart_app.config import as_cluster_nodes

from ..support import LOAD_CLIENTS, LoadCounts, read_your_writes_load, until_cached_again
from ..throwaway_cluster import ThrowawayCluster

PREFIX = "reshard:"
#: The list view's hash tag: its entries and tokens are in this key's slot.
LIST_VIEW_TAG = "{quart_app.info.routes.list_info}"


def worker(cluster: ThrowawayCluster, tmp_path: Path, **extra: Any) -> Quart:
    return create_app({
        **cluster.app_config(PREFIX), "CACHE_REDIS_TIMEOUT": 0.3, "CACHE_RETRY_INTERVAL": 0.5,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "RECEIVERS": {"visits": False},
        **extra,
    })


async def test_moving_a_views_slot_under_load_serves_nothing_stale(
    throwaway_cluster: ThrowawayCluster, tmp_path: Path
) -> None:
    counts, acknowledged, stop = LoadCounts(), [], asyncio.Event()
    apps = (worker(throwaway_cluster, tmp_path), worker(throwaway_cluster, tmp_path))
    slot = throwaway_cluster.slot_of(LIST_VIEW_TAG)
    async with apps[0].test_app(), apps[1].test_app():
        running = asyncio.gather(*(read_your_writes_load(apps, counts, stop, acknowledged, first_id)
                                   for first_id in range(1, LOAD_CLIENTS + 1)))
        await asyncio.sleep(0.5)
        home = throwaway_cluster.master_of_slot(slot)
        away = next(port for port in throwaway_cluster.masters() if port != home)
        started = time.monotonic()
        pace = lambda: time.sleep(0.05)  # noqa: E731  (lets requests in between the steps)
        there = await asyncio.to_thread(throwaway_cluster.move_slot, slot, away, between=pace)
        moved_with = counts.acknowledged
        assert throwaway_cluster.master_of_slot(slot) == away
        back = await asyncio.to_thread(throwaway_cluster.move_slot, slot, home, between=pace)
        moving = time.monotonic() - started
        for app in apps:
            await until_cached_again(app)
        await asyncio.sleep(0.3)
        stop.set()
        await running
        reader = apps[0].test_client()
        for info_id in acknowledged:
            counts.lost += (await reader.get(f"/api/info/{info_id}")).status_code != 200
    print(f"\nreshard run ({moving:.1f} s moving the slot there and back, {there} and {back} "
          f"keys moved): {counts}")
    assert there > 0 and back > 0  # the view's keys were in the slot that moved
    assert throwaway_cluster.master_of_slot(slot) == home
    assert moved_with > 0 and counts.acknowledged > moved_with
    assert counts.lost == 0
    assert counts.stale == 0
    assert counts.server_errors == 0


def settings(cluster: ThrowawayCluster, **changes: Any) -> CacheSettings:
    return CacheSettings(cache_type="RedisClusterCache", key_prefix=PREFIX,
                         cluster_nodes=tuple(as_cluster_nodes("nodes", cluster.startup_nodes)
                                             or ()), **changes)


async def test_keys_of_a_half_moved_slot_are_read_together_without_an_outage(
    throwaway_cluster: ThrowawayCluster,
) -> None:
    """One key of the slot already on the new master, one still on the old: Redis answers an
    MGET of both with TRYAGAIN for as long as the move lasts. That is no outage: both are read
    (before, the client took it for one, and every read missed for CACHE_RETRY_INTERVAL)."""
    client = CacheClient(settings(throwaway_cluster))
    try:
        assert await client.set_many({"{tag}moved": 1, "{tag}staying": 2, "{tag}gone": 3})
        assert await client.delete("{tag}gone")
        slot = throwaway_cluster.slot_of("{tag}")
        home = throwaway_cluster.master_of_slot(slot)
        away = next(port for port in throwaway_cluster.masters() if port != home)
        throwaway_cluster.start_moving(slot, away)
        throwaway_cluster.migrate(slot, home, away, 0, keys=[f"{PREFIX}{{tag}}moved".encode()])
        assert await client.get_many("{tag}moved", "{tag}staying", "{tag}gone") == [1, 2, None]
        assert not client.is_down
        throwaway_cluster.migrate(slot, home, away, 100)
        throwaway_cluster.finish_moving(slot, away)
        assert await client.get_many("{tag}moved", "{tag}staying") == [1, 2]
    finally:
        await client.close()


async def test_a_reshard_is_no_failover_and_forgets_nothing(
    throwaway_cluster: ThrowawayCluster, caplog: pytest.LogCaptureFixture,
) -> None:
    """MIGRATE moves each key synchronously: a slot moved to another master lost nothing,
    so nothing is cleared (before, each slot moved cleared the whole cache, as a failover)."""
    client = CacheClient(settings(throwaway_cluster))
    try:
        assert await client.set_many({"{tag}a": 1, "{other}b": 2})
        assert await client.inc("{tag}count") == 1  # the client's slot map is learnt
        slot = throwaway_cluster.slot_of("{tag}")
        away = next(port for port in throwaway_cluster.masters()
                    if port != throwaway_cluster.master_of_slot(slot))
        with caplog.at_level(logging.INFO, "quart_app.cache"):
            await asyncio.to_thread(throwaway_cluster.move_slot, slot, away, batches=1)
            assert await client.get_many("{tag}a", "{other}b") == [1, 2]  # MOVED, then read
            assert await client.get("{tag}a") == 1
        assert client.outage is not None and not client.outage.invalidations_lost
        assert any("a reshard" in record.getMessage() for record in caplog.records)
        assert not [record for record in caplog.records if "cleared" in record.getMessage()]
    finally:
        await client.close()


async def test_a_key_already_moved_is_read_through_ask_with_many_connections_open(
    throwaway_cluster: ThrowawayCluster,
) -> None:
    """An ASK redirection needs ASKING and the command on one connection; redis-py sends them
    as two commands, each on the node's first free connection, and frees connections to the
    back of the queue: with two or more free, the command went on another connection, was
    answered MOVED (back to the old master, which answers ASK again) until redis-py gave up,
    and the cache took it for an outage (an insert's invalidation: a 503)."""
    client = CacheClient(settings(throwaway_cluster, redis_pool_size=8))
    try:
        assert await client.set("{tag}moved", 1)
        slot = throwaway_cluster.slot_of("{tag}")
        home = throwaway_cluster.master_of_slot(slot)
        away = next(port for port in throwaway_cluster.masters() if port != home)
        on_away = [f"k{number}" for number in range(200)
                   if throwaway_cluster.master_of(PREFIX + f"k{number}") == away][:8]
        await asyncio.gather(*(client.get(key) for key in on_away))  # connections to `away`
        await moved_key_is_read_and_deleted(throwaway_cluster, client, slot, home, away)
    finally:
        await client.close()


async def test_a_slot_moving_to_a_new_empty_master_is_read_there(
    throwaway_cluster: ThrowawayCluster,
) -> None:
    """Scaling out: a master added with no slots, then a slot moved to it. redis-py learns
    nodes from CLUSTER SLOTS, which names no master without slots, so the first ASK to it
    found no node (AttributeError on None): a 500 for every request that read such a key."""
    client = CacheClient(settings(throwaway_cluster))
    try:
        assert await client.set("{tag}moved", 1)
        slot = throwaway_cluster.slot_of("{tag}")
        home = throwaway_cluster.master_of_slot(slot)
        new = await asyncio.to_thread(throwaway_cluster.add_empty_master)
        await moved_key_is_read_and_deleted(throwaway_cluster, client, slot, home, new)
        # A master that served no slots could be a promoted replica: the first MOVED to it
        # counts as a failover (that call's answer is dropped, the cache forgets), once.
        await client.set("{tag}moved", 2)
        assert await client.set("{tag}moved", 3)
        assert await client.get("{tag}moved") == 3
        assert throwaway_cluster.master_of_slot(slot) == new
    finally:
        await client.close()


async def moved_key_is_read_and_deleted(
    cluster: ThrowawayCluster, client: CacheClient, slot: int, home: int, to: int,
) -> None:
    """Move `{tag}moved` (value 1) alone of its slot to `to`, then read it and delete it
    while the slot is half moved (ASK), and finish the move."""
    cluster.start_moving(slot, to)
    cluster.migrate(slot, home, to, 0, keys=[f"{PREFIX}{{tag}}moved".encode()])
    assert await client.get("{tag}moved") == 1
    assert await client.delete("{tag}moved")
    assert not client.is_down
    cluster.finish_moving(slot, to)
