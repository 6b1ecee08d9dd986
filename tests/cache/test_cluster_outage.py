"""RedisClusterCache when the whole cluster is gone: every node killed while two workers take
inserts and reads. The app answers from the database (uncached) or 503 with Retry-After,
never a 500 nor a stale read, and caches again once the nodes are back. Run with `-s` to see
the counts:

    .venv/bin/python -m pytest tests/cache/test_cluster_outage.py -s -q
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quart_app import create_app

from ..support import left_out, listed_ids, until_cached_again
from ..throwaway_cluster import ThrowawayCluster

PREFIX = "outage:"
CLIENTS = 4


def worker(cluster: ThrowawayCluster, tmp_path: Path, **extra: Any) -> Quart:
    return create_app({
        **cluster.app_config(PREFIX), "CACHE_REDIS_TIMEOUT": 0.3, "CACHE_RETRY_INTERVAL": 0.5,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "RECEIVERS": {"visits": False},
        **extra,
    })


async def load(apps: Sequence[Quart], stop: asyncio.Event, first_id: int,
               seen: Counter[str], acknowledged: list[int]) -> None:
    """Read the list, insert on one worker, read the row and the list on the other, until
    `stop`."""
    info_id = first_id - CLIENTS
    while not stop.is_set():
        info_id += CLIENTS
        writer, reader = (app.test_client() for app in (apps[info_id % 2], apps[1 - info_id % 2]))
        listed = await reader.get("/api/info")
        seen[f"GET {listed.status_code}"] += 1
        if listed.status_code == 503:
            seen["503 without Retry-After"] += "Retry-After" not in listed.headers
        created = await writer.post("/api/info", json={"id": info_id, "name": "o", "money": "1"})
        seen[f"POST {created.status_code}"] += 1
        if created.status_code == 503:
            seen["503 without Retry-After"] += "Retry-After" not in created.headers
            continue
        if created.status_code != 201:
            continue
        acknowledged.append(info_id)
        row = await reader.get(f"/api/info/{info_id}")
        page = await reader.get("/api/info")
        for answer in (row, page):
            seen[f"GET {answer.status_code}"] += 1
            if answer.status_code == 503:
                seen["503 without Retry-After"] += "Retry-After" not in answer.headers
        if page.status_code == 200 and (
                row.status_code == 404 or left_out(listed_ids(await page.get_json()), info_id)):
            seen["stale"] += 1


@pytest.mark.parametrize("ignore_errors", [True, False], ids=["ignore_errors", "strict"])
async def test_the_whole_cluster_down_under_load_is_503s_or_uncached_then_cached_again(
    throwaway_cluster: ThrowawayCluster, tmp_path: Path, ignore_errors: bool
) -> None:
    """CACHE_IGNORE_ERRORS false makes a cache call raise CacheUnavailable: still a 503."""
    seen: Counter[str] = Counter()
    acknowledged: list[int] = []
    stop = asyncio.Event()
    apps = [worker(throwaway_cluster, tmp_path, CACHE_IGNORE_ERRORS=ignore_errors)
            for _ in range(2)]
    async with apps[0].test_app(), apps[1].test_app():
        running = asyncio.gather(*(load(apps, stop, first_id, seen, acknowledged)
                                   for first_id in range(1, CLIENTS + 1)))
        await asyncio.sleep(0.5)
        ports = throwaway_cluster.kill_all()
        killed = time.monotonic()
        before = seen.copy()
        await asyncio.sleep(2.0)
        during = seen - before
        await asyncio.to_thread(throwaway_cluster.relaunch, ports)
        back = time.monotonic()
        for app in apps:
            await until_cached_again(app)
        recovered = time.monotonic() - back
        after = seen.copy()
        await asyncio.sleep(0.5)
        stop.set()
        await running
        reader = apps[0].test_client()
        lost = [info_id for info_id in acknowledged
                if (await reader.get(f"/api/info/{info_id}")).status_code != 200]
    print(f"\nwhole cluster down: {dict(seen)}; while down: {dict(during)}; cached again "
          f"{recovered:.1f} s after the nodes were back ({back - killed:.1f} s down)")
    assert sum(count for name, count in seen.items() if name.endswith(("500", "502"))) == 0
    assert not {name for name in seen if name[-3:].isdigit() and int(name[-3:]) >= 500
                and name[-3:] != "503"}
    assert seen["503 without Retry-After"] == 0
    assert seen["stale"] == 0
    assert not lost
    assert sum(during.values()) > 0  # the app answered while the cluster was down
    assert (seen - after)["POST 201"] > 0  # and took inserts after it came back
