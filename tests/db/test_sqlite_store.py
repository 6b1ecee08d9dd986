"""SQLiteStore details: commits, several connections on one file, a locked database."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from quart_app.db import InfoRow, PoolSettings, StoreUnavailable, create_store
from quart_app.db.sqlite_store import SQLiteStore


def sqlite_store(path: Path, **settings: object) -> SQLiteStore:
    store = create_store(f"sqlite:///{path}", PoolSettings.from_mapping(settings), base_dir="/")
    assert isinstance(store, SQLiteStore)
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = sqlite_store(tmp_path / "info.sqlite3", acquire_timeout=0.3)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_an_insert_is_committed_before_it_returns(store: SQLiteStore) -> None:
    await store.insert(5, "redis", Decimal("588.10"))
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("SELECT id, name, money_cents FROM info").fetchall() == [
            (5, "redis", 58810)
        ]
    finally:
        other.close()


async def test_a_change_keeps_a_stored_value_the_store_would_refuse_now(
    store: SQLiteStore,
) -> None:
    # Older versions stored negative money; renaming such a row keeps its amount.
    await store.insert(5, "old", Decimal("1"))
    other = sqlite3.connect(store.path)
    try:
        other.execute("UPDATE info SET money_cents = -100 WHERE id = 5")
        other.commit()
    finally:
        other.close()
    assert await store.update(5, name="new") == (
        InfoRow(5, "old", Decimal("-1")), InfoRow(5, "new", Decimal("-1")))
    assert await store.get(5) == InfoRow(5, "new", Decimal("-1"))


async def test_two_stores_on_one_file_assign_distinct_ids(store: SQLiteStore) -> None:
    # As two hypercorn workers would: two connections, one file.
    second = sqlite_store(Path(store.path), acquire_timeout=5)
    await second.open()
    try:
        rows = await asyncio.gather(*(
            (store if n % 2 else second).insert(None, f"n{n}", Decimal("1")) for n in range(40)
        ))
    finally:
        await second.close()
    assert sorted(row.id for row in rows) == list(range(1, 41))
    page, _ = await store.list_page(100, None)
    assert len(page) == 40


async def test_a_locked_database_is_store_unavailable(store: SQLiteStore) -> None:
    await store.ping()
    locker = sqlite3.connect(store.path, isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable) as caught:
            await store.insert(None, "x", Decimal("1"))
        assert time.perf_counter() - started < 2
        assert caught.value.retry_after == 1
        assert store.stats()["timeouts"] == 1
        locker.execute("ROLLBACK")
    finally:
        locker.close()
    assert (await store.insert(None, "x", Decimal("1"))).id == 1


async def test_closed_store_is_unavailable(store: SQLiteStore) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.get(1)
    await store.open()
    assert await store.get(1) is None
