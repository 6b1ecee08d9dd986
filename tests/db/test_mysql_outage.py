"""The database down at start and mid-run, on a private mariadbd (never the shared one)."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from pathlib import Path

import pytest

from quart_app.db import PoolSettings, StoreUnavailable, create_store
from quart_app.db.mysql_store import MySQLStore

from ..support import query
from ..throwaway_mariadb import ThrowawayMariaDB

FAST = {"connect_timeout": 1, "acquire_timeout": 1, "query_timeout": 5, "mincached": 2}


def make_store(server: ThrowawayMariaDB, tmp_path: Path) -> MySQLStore:
    store = create_store(server.url, PoolSettings.from_mapping(FAST), base_dir=tmp_path)
    assert isinstance(store, MySQLStore)
    return store


async def fails_fast(store: MySQLStore, limit: float = 1.5) -> StoreUnavailable:
    started = time.perf_counter()
    with pytest.raises(StoreUnavailable) as caught:
        await store.insert(None, "down", Decimal("1"))
    assert time.perf_counter() - started < limit
    assert 1 <= caught.value.retry_after <= 5
    assert store.stats()["in_use"] == 0
    return caught.value


async def test_down_at_start_then_up(
    throwaway_mariadb: ThrowawayMariaDB, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(throwaway_mariadb, tmp_path)
    try:
        caplog.set_level(logging.INFO, logger="quart_app.db")
        await store.open()  # must not raise
        error = await fails_fast(store)
        await fails_fast(store)
        with pytest.raises(StoreUnavailable):
            await store.ping()
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1
        assert "unavailable" in warnings[0].getMessage()
        assert "unavailable" in str(error)

        throwaway_mariadb.start()  # a fresh server: no quart_app_test database yet
        row = await store.insert(None, "up", Decimal("1.50"))
        assert (row.id, row.money) == (1, Decimal("1.50"))
        assert await store.get(1) == row
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await store.close()


async def test_killed_mid_run_then_restarted(
    throwaway_mariadb: ThrowawayMariaDB, tmp_path: Path
) -> None:
    throwaway_mariadb.start()
    store = make_store(throwaway_mariadb, tmp_path)
    try:
        await store.open()
        await store.insert(1, "before", Decimal("1"))
        assert int(store.stats()["idle"]) >= 1

        throwaway_mariadb.kill()
        await fails_fast(store)
        with pytest.raises(StoreUnavailable):
            await store.get(1)

        throwaway_mariadb.start()  # same port, same data directory
        await store.insert(2, "after", Decimal("2"))  # no reopen needed
        rows, _ = await store.list_page(10, None)
        assert [row.id for row in rows] == [2, 1]
        assert store.stats()["in_use"] == 0
    finally:
        await store.close()


async def test_restart_between_requests_costs_no_request(
    throwaway_mariadb: ThrowawayMariaDB, tmp_path: Path
) -> None:
    throwaway_mariadb.start()
    store = make_store(throwaway_mariadb, tmp_path)
    try:
        await store.open()
        await asyncio.gather(*(store.get(1) for _ in range(3)))
        throwaway_mariadb.stop()
        throwaway_mariadb.start()
        # Every idle connection is dead; the first request still succeeds.
        assert (await store.insert(None, "x", Decimal("1"))).id == 1
    finally:
        await store.close()


async def test_killed_during_a_query(throwaway_mariadb: ThrowawayMariaDB, tmp_path: Path) -> None:
    throwaway_mariadb.start()
    store = make_store(throwaway_mariadb, tmp_path)
    try:
        await store.open()

        async def slow() -> None:
            async with store.pool.connection() as conn:
                await query(conn.raw, "SELECT SLEEP(30)")

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.3)
        started = time.perf_counter()
        throwaway_mariadb.kill()
        with pytest.raises(Exception, match="Lost connection"):
            await asyncio.wait_for(task, 5)
        assert time.perf_counter() - started < 2
        stats = store.stats()
        assert (stats["in_use"], stats["idle"]) == (0, 0)
        throwaway_mariadb.start()
        await store.ping()
    finally:
        await store.close()
