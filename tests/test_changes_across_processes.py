"""Updates, deletes and bulk loads seen by other processes: over the signal bus with memory
caches, and with Redis plus the local tier (CACHE_LOCAL).

Two apps in one test process stand for two processes: each has its own caches, bus origin
and receivers; they share the Redis server and a SQLite file.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quart_app import create_app
from quart_app.cache.local_tier import LocalTier
from quart_app.dispatch import receiver
from quart_app.extensions import cache
from quart_app.signals import info_deleted, info_updated

from .services import forget_redis_prefix
from .support import wait_until

ROWS = [{"id": 1, "name": "one", "money": "1.00"}, {"id": 2, "name": "two", "money": "2.00"}]


async def read(app: Quart, path: str) -> tuple[int, Any]:
    response = await app.test_client().get(path)
    return response.status_code, await response.get_json()


async def write(app: Quart, method: str, path: str, body: Any = None) -> None:
    kwargs = {} if body is None else {"json": body}
    response = await getattr(app.test_client(), method)(path, **kwargs)
    assert response.status_code in (200, 201, 204), await response.get_data()


@pytest.fixture
def channel() -> str:
    return f"changes-bus-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of the test's own, and its keys removed afterwards."""
    prefix = f"changes-{uuid.uuid4().hex[:8]}:"
    yield prefix
    forget_redis_prefix(redis_url, prefix)


@pytest.fixture(params=["memory+bus", "redis+local"])
async def two_apps(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, channel: str, prefix: str
) -> AsyncIterator[tuple[Quart, Quart]]:
    settings: dict[str, Any] = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "SIGNALS_BUS_CHANNEL": channel,
    }
    if request.param == "memory+bus":
        settings["SIGNALS_BUS_URL"] = redis_url
    else:
        settings.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_url,
                        CACHE_LOCAL=True)
    # Memory caches are per process anyway; with the local tier both share one Redis prefix.
    shared = request.param == "redis+local"
    first = create_app({**settings, "CACHE_KEY_PREFIX": prefix if shared else f"{prefix}1:"})
    second = create_app({**settings, "CACHE_KEY_PREFIX": prefix if shared else f"{prefix}2:"})
    async with first.test_app(), second.test_app():
        await wait_until(lambda: first.extensions["signal_bus"].connected
                         and second.extensions["signal_bus"].connected)
        tiers = [cache.client_for(app).local for app in (first, second)]
        await wait_until(lambda: all(tier is None or tier.serving for tier in tiers))
        for row in ROWS:
            await write(first, "post", "/api/info", row)
        if not shared:
            # Over the bus the inserts reach `second` after `first` answered: a late one
            # would invalidate what the test reads next.
            await wait_until(lambda: second.extensions["signal_bus"].delivered >= len(ROWS))
        yield first, second


def tier_of(app: Quart) -> LocalTier | None:
    return cache.client_for(app).local


async def cached_reads(app: Quart) -> None:
    """Read the list and row 1 twice: the second time from `app`'s own cache (its memory, or
    its local copy of Redis)."""
    tier = tier_of(app)
    for path in ("/api/info", "/api/info/1"):
        assert (await app.test_client().get(path)).status_code == 200
        hits = tier.hits if tier is not None else 0
        again = await app.test_client().get(path)
        assert again.headers["Cache-Status"].startswith("quart_app; hit")
        if tier is not None:
            assert tier.hits > hits  # served from the local copy


async def sees(app: Quart, path: str, status: int, body: Any, at_once: bool) -> None:
    """`app` reads `path` as `status`/`body`: on its very next read with the local tier
    (the writer's response came after every process dropped its copy), within a few
    milliseconds over the bus (pub/sub delivers after the writer answered)."""
    if at_once:
        assert await read(app, path) == (status, body)
        return
    async with asyncio.timeout(5):
        while await read(app, path) != (status, body):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_an_update_elsewhere_is_read_everywhere(two_apps: tuple[Quart, Quart]) -> None:
    first, second = two_apps
    at_once = tier_of(second) is not None
    await cached_reads(second)
    await write(first, "patch", "/api/info/1", {"name": "changed"})
    changed = {"id": 1, "name": "changed", "money": "1.00"}
    await sees(second, "/api/info/1", 200, changed, at_once)
    await sees(second, "/api/info", 200, {"items": [ROWS[1], changed], "next_cursor": None},
               at_once)


async def test_a_delete_elsewhere_is_read_everywhere(two_apps: tuple[Quart, Quart]) -> None:
    first, second = two_apps
    at_once = tier_of(second) is not None
    await cached_reads(second)
    await write(first, "delete", "/api/info/1")
    await sees(second, "/api/info/1", 404,
               {"error": "not_found", "message": "no info row with id 1"}, at_once)
    await sees(second, "/api/info", 200, {"items": [ROWS[1]], "next_cursor": None}, at_once)


async def test_a_bulk_load_elsewhere_is_read_everywhere(two_apps: tuple[Quart, Quart]) -> None:
    first, second = two_apps
    at_once = tier_of(second) is not None
    await cached_reads(second)
    assert (await read(second, "/api/info/3"))[0] == 404  # cached
    await write(first, "post", "/api/info/bulk",
                [{"id": 3, "name": "three", "money": 3}, {"id": 4, "name": "four", "money": 4}])
    await sees(second, "/api/info/3", 200, {"id": 3, "name": "three", "money": "3.00"},
               at_once)
    page = await read(second, "/api/info")
    assert [row["id"] for row in page[1]["items"]] == [4, 3, 2, 1]


async def test_update_and_delete_signals_reach_the_other_process_once(
    two_apps: tuple[Quart, Quart],
) -> None:
    first, second = two_apps
    heard: list[tuple[str, str, Any, Any]] = []
    for name, app in (("first", first), ("second", second)):
        @receiver(info_updated, app, dispatch_uid=f"test.updated.{name}")
        async def updated(sender: Quart, row: Any, previous: Any, name: str = name,
                          **extra: Any) -> None:
            heard.append((name, "updated", row, previous))

        @receiver(info_deleted, app, dispatch_uid=f"test.deleted.{name}")
        async def deleted(sender: Quart, row: Any, name: str = name, **extra: Any) -> None:
            heard.append((name, "deleted", row, None))

    await write(first, "put", "/api/info/2", {"name": "new", "money": "2.5"})
    await write(first, "delete", "/api/info/2")
    await wait_until(lambda: len(heard) >= 4)
    await asyncio.sleep(0.2)  # room for a duplicate or an echo to show up
    assert len(heard) == 4
    remote = [event for event in heard if event[0] == "second"]
    (_, _, row, previous), (_, _, gone, _) = remote
    assert row.to_json() == {"id": 2, "name": "new", "money": "2.50"}
    assert previous.to_json() == ROWS[1]
    assert gone.to_json() == {"id": 2, "name": "new", "money": "2.50"}
