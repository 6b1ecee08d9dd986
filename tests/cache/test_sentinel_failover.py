"""RedisSentinelCache across a failover: the primary is killed, the sentinels promote the
replica, and the app follows without a restart and serves nothing stale. Run with `-s` to
see the counts and the recovery times:

    .venv/bin/python -m pytest tests/cache/test_sentinel_failover.py -s -q
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
from ..throwaway_sentinel import MASTER_NAME, ThrowawaySentinels, throwaway_sentinels

__all__ = ["throwaway_sentinels"]  # a fixture

PREFIX = "failover:"


def worker(deployment: ThrowawaySentinels, tmp_path: Path, **extra: Any) -> Quart:
    return failover_worker(deployment, tmp_path, PREFIX, **extra)


async def test_an_invalidation_the_new_master_never_received_is_not_served_stale(
    throwaway_sentinels: ThrowawaySentinels, tmp_path: Path
) -> None:
    """The old master acknowledged the insert's invalidation and died before its replica had
    it: after the promotion, the first read finds the entry and the tokens of before the
    insert. The client saw the master move, so it forgets what may be stale first."""
    app = worker(throwaway_sentinels, tmp_path,
                 RECEIVERS={"visits": False})  # no background Redis calls during the failover
    async with app.test_app():
        client = app.test_client()
        assert (await client.post("/api/info", json={"id": 1, "name": "a", "money": "1"})
                ).status_code == 201
        assert listed_ids(await (await client.get("/api/info")).get_json()) == [1]
        old = throwaway_sentinels.primary_port
        before_insert = keys_on(throwaway_sentinels, old, PREFIX)
        assert (await client.post("/api/info", json={"id": 2, "name": "b", "money": "2"})
                ).status_code == 201
        throwaway_sentinels.kill(old)
        new = await asyncio.to_thread(throwaway_sentinels.wait_for_promotion, old)
        await asyncio.to_thread(restore, throwaway_sentinels, new, PREFIX, before_insert)

        page = await client.get("/api/info")
        assert page.status_code == 200
        assert listed_ids(await page.get_json()) == [2, 1]
        assert page.headers["Cache-Status"] == "quart_app; fwd=miss; stored"  # it read Redis
        assert (await client.get("/api/info/2")).status_code == 200
        # and the cache works on the new master
        await client.get("/api/info")
        assert (await client.get("/api/info")).headers["Cache-Status"].startswith(
            "quart_app; hit")


@pytest.mark.parametrize("local", [False, True], ids=["sentinel", "sentinel+local"])
async def test_killing_the_primary_under_load_loses_nothing_and_serves_nothing_stale(
    throwaway_sentinels: ThrowawaySentinels, tmp_path: Path, local: bool
) -> None:
    counts, acknowledged, stop = FailoverCounts(), [], asyncio.Event()
    apps = (worker(throwaway_sentinels, tmp_path, CACHE_LOCAL=local),
            worker(throwaway_sentinels, tmp_path, CACHE_LOCAL=local))
    async with apps[0].test_app(), apps[1].test_app():
        running = asyncio.gather(*(read_your_writes_load(apps, counts, stop, acknowledged,
                                                         first_id)
                                   for first_id in range(1, LOAD_CLIENTS + 1)))
        await asyncio.sleep(0.5)
        old = throwaway_sentinels.primary_port
        killed = time.monotonic()
        throwaway_sentinels.kill(old)
        await asyncio.to_thread(throwaway_sentinels.wait_for_promotion, old)
        counts.failover = time.monotonic() - killed
        await until_cached_again(apps[1])
        counts.recovery = time.monotonic() - killed
        if local:  # the bus follows the master too: subscribed and publishing again
            await wait_for_the_bus(apps, 10)
        recovered_with = counts.acknowledged
        await asyncio.sleep(0.5)
        stop.set()
        await running
        counts.after_recovery = counts.acknowledged - recovered_with
        await count_the_lost(apps[0], counts, acknowledged)
    print(f"\nfailover run ({'sentinel+local' if local else 'sentinel'}): {counts}")
    assert_the_failover_lost_nothing(counts)


def pubsub_clients(deployment: ThrowawaySentinels, port: int) -> list[str]:
    """The names of the subscribed clients of the server on `port`."""
    server = deployment.client(port)
    try:
        return [client["name"] for client in server.client_list(_type="pubsub")]
    finally:
        server.close()


async def subscribed_on(deployment: ThrowawaySentinels, port: int, names: set[str]) -> None:
    """Until every client named in `names` is subscribed on the server on `port`."""
    async with asyncio.timeout(10):
        while True:
            if names <= set(await asyncio.to_thread(pubsub_clients, deployment, port)):
                return
            await asyncio.sleep(0.05)


async def test_a_demoted_master_loses_the_bus_subscribers_to_the_new_one(
    throwaway_sentinels: ThrowawaySentinels, tmp_path: Path
) -> None:
    """SENTINEL FAILOVER demotes the master without killing it: its subscribers stay connected
    and would hear nothing published on the new master, so the bus asks the sentinels where
    the master is and subscribes there."""
    apps = (worker(throwaway_sentinels, tmp_path, CACHE_LOCAL=True),
            worker(throwaway_sentinels, tmp_path, CACHE_LOCAL=True))
    async with apps[0].test_app(), apps[1].test_app():
        buses = [app.extensions["signal_bus"] for app in apps]
        names = {f"quart_app-bus-{bus.origin[:12]}" for bus in buses}
        old = throwaway_sentinels.primary_port
        await subscribed_on(throwaway_sentinels, old, names)
        sentinel = throwaway_sentinels.client(throwaway_sentinels.sentinel_ports[0])
        try:
            sentinel.sentinel_failover(MASTER_NAME)
        finally:
            sentinel.close()
        new = await asyncio.to_thread(throwaway_sentinels.wait_for_promotion, old)
        await subscribed_on(throwaway_sentinels, new, names)
        await wait_for_the_bus(apps, 10)
        # and an insert on one is read at once on the other, its copy evicted and confirmed
        await an_insert_is_read_at_once_on_the_other(apps)
