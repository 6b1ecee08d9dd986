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

from quart_app import create_app

from ..support import (
    LOAD_CLIENTS,
    FailoverCounts,
    listed_ids,
    read_your_writes_load,
    until_cached_again,
)
from ..throwaway_sentinel import MASTER_NAME, ThrowawaySentinels, throwaway_sentinels

__all__ = ["throwaway_sentinels"]  # a fixture

PREFIX = "failover:"


def worker(deployment: ThrowawaySentinels, tmp_path: Path, **extra: Any) -> Quart:
    return create_app({
        **deployment.app_config(PREFIX), "CACHE_REDIS_TIMEOUT": 0.3,
        "CACHE_RETRY_INTERVAL": 0.5, "CACHE_LOCAL_ACK_TIMEOUT": 0.3,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **extra,
    })


def snapshot(deployment: ThrowawaySentinels, port: int) -> dict[bytes, bytes]:
    server = deployment.client(port)
    try:
        return {key: server.get(key) for key in server.scan_iter(match=PREFIX + "*")}
    finally:
        server.close()


def restore(deployment: ThrowawaySentinels, port: int, keys: dict[bytes, bytes]) -> None:
    """Put the cache's keys back as they were: what a replica that missed the writes since
    holds (replication is asynchronous)."""
    server = deployment.client(port)
    try:
        stale = list(server.scan_iter(match=PREFIX + "*"))
        if stale:
            server.delete(*stale)
        for key, value in keys.items():
            server.set(key, value)
    finally:
        server.close()


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
        before_insert = snapshot(throwaway_sentinels, old)
        assert (await client.post("/api/info", json={"id": 2, "name": "b", "money": "2"})
                ).status_code == 201
        throwaway_sentinels.kill(old)
        new = await asyncio.to_thread(throwaway_sentinels.wait_for_promotion, old)
        await asyncio.to_thread(restore, throwaway_sentinels, new, before_insert)

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
            buses = [app.extensions["signal_bus"] for app in apps]
            async with asyncio.timeout(10):
                while not all(bus.connected for bus in buses):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        recovered_with = counts.acknowledged
        await asyncio.sleep(0.5)
        stop.set()
        await running
        counts.after_recovery = counts.acknowledged - recovered_with
        reader = apps[0].test_client()
        for info_id in acknowledged:
            counts.lost += (await reader.get(f"/api/info/{info_id}")).status_code != 200
    print(f"\nfailover run ({'sentinel+local' if local else 'sentinel'}): {counts}")
    assert counts.acknowledged > 0
    assert counts.after_recovery > 0
    assert counts.lost == 0
    assert counts.stale == 0
    assert counts.server_errors == 0
    assert counts.refused == 0


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
        async with asyncio.timeout(10):
            while not all(bus.connected for bus in buses):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        # and an insert on one is read at once on the other, its copy evicted and confirmed
        reader = apps[1].test_client()
        assert (await reader.get("/api/info/9")).status_code == 404
        created = await apps[0].test_client().post(
            "/api/info", json={"id": 9, "name": "n", "money": "1"})
        assert created.status_code in (201, 503)
        assert (await reader.get("/api/info/9")).status_code == 200
