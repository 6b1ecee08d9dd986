"""MySQLStore on the real MariaDB: commits, refusals, lost answers and schema handling."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quart_app.db import DuplicateId, PoolSettings, StoreError, StoreUnavailable, create_store
from quart_app.db.mysql_store import MySQLStore

from ..support import query, wait_until_gone


def mysql_store(url: str, tmp_path: Path, **settings: Any) -> MySQLStore:
    store = create_store(url, PoolSettings.from_mapping(settings), base_dir=tmp_path)
    assert isinstance(store, MySQLStore)
    return store


@pytest.fixture
async def store(mysql_url: str, tmp_path: Path) -> AsyncIterator[MySQLStore]:
    store = mysql_store(mysql_url, tmp_path, query_timeout=2)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def blocked_insert_threads(admin: Any, count: int = 1) -> list[int]:
    """The server threads of `count` store INSERTs waiting for a row lock."""
    for _ in range(100):
        rows = await query(
            admin,
            "SELECT ID FROM information_schema.PROCESSLIST "
            "WHERE DB = DATABASE() AND INFO LIKE 'SET STATEMENT%%INSERT INTO info%%'",
        )
        if len(rows) >= count:
            return [int(row[0]) for row in rows]
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} INSERTs are waiting")


async def blocked_insert_thread(admin: Any) -> int:
    return (await blocked_insert_threads(admin))[0]


async def deadlocks(admin: Any) -> int:
    ((_, value),) = await query(admin, "SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
    return int(value)


async def test_open_creates_schema_and_mincached(store: MySQLStore, admin: Any) -> None:
    assert await query(admin, "SHOW TABLES LIKE 'info'") == [("info",)]
    stats = store.stats()
    assert (stats["backend"], stats["idle"], stats["size"]) == ("mysql", 2, 2)


async def test_an_insert_is_committed_before_it_returns(store: MySQLStore, admin: Any) -> None:
    await store.insert(5, "redis", Decimal("588"))
    # Another connection, another transaction: it only sees committed rows.
    assert await query(admin, "SELECT id, name, money FROM info") == [
        (5, "redis", Decimal("588.00"))
    ]


async def test_a_failed_insert_rolls_back_and_keeps_the_connection(store: MySQLStore) -> None:
    await store.insert(5, "a", Decimal("1"))
    before = store.stats()
    with pytest.raises(DuplicateId):
        await store.insert(5, "b", Decimal("2"))
    after = store.stats()
    assert after["discarded"] == before["discarded"]
    assert after["in_use"] == 0
    for conn in store.pool._idle:
        assert not conn.raw.get_transaction_status()


async def test_a_cancelled_insert_leaks_nothing_and_the_server_ends_it(
    store: MySQLStore, admin: Any
) -> None:
    await admin.begin()
    await query(admin, "INSERT INTO info (id, name, money) VALUES (7, 'admin', 1)")
    task = asyncio.create_task(store.insert(7, "store", Decimal("2")))
    thread = await blocked_insert_thread(admin)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.stats()["in_use"] == 0
    # Still waiting for the lock, the abandoned INSERT hits the server's 2 s time limit.
    await wait_until_gone(admin, thread, seconds=10)
    await admin.rollback()
    assert await query(admin, "SELECT id FROM info") == []
    assert (await store.insert(7, "again", Decimal("3"))).id == 7


async def test_the_servers_time_limit_stores_nothing(store: MySQLStore, admin: Any) -> None:
    await admin.begin()
    await query(admin, "INSERT INTO info (id, name, money) VALUES (7, 'admin', 1)")
    discarded = store.stats()["discarded"]
    with pytest.raises(StoreUnavailable, match="within 2s; nothing was stored") as caught:
        await store.insert(7, "store", Decimal("2"))
    assert caught.value.retry_after > 0
    await admin.rollback()
    assert await query(admin, "SELECT id FROM info") == []
    # The server answered: the connection is in step and goes back to the pool.
    assert store.stats()["discarded"] == discarded
    assert store.stats()["in_use"] == 0


async def test_a_connection_lost_after_sending_is_an_unknown_outcome_not_a_retry(
    store: MySQLStore, admin: Any
) -> None:
    await admin.begin()
    await query(admin, "INSERT INTO info (id, name, money) VALUES (7, 'admin', 1)")
    created = store.stats()["created"]
    task = asyncio.create_task(store.insert(7, "store", Decimal("2")))
    thread = await blocked_insert_thread(admin)
    await query(admin, "KILL %s", (thread,))
    with pytest.raises(StoreUnavailable, match="may or may not be stored") as caught:
        await task
    assert caught.value.retry_after > 0
    await admin.rollback()
    # Not sent again on a new connection: it would have waited for the lock and stored 7.
    assert store.stats()["created"] == created
    assert await query(admin, "SELECT id FROM info") == []


async def test_a_deadlock_victim_is_retried(store: MySQLStore, admin: Any) -> None:
    # Two inserts of an id another transaction holds both wait for it; its rollback makes
    # them deadlock, and the victim, sent again, finds the winner's row.
    before = await deadlocks(admin)
    await admin.begin()
    await query(admin, "INSERT INTO info (id, name, money) VALUES (7, 'admin', 1)")
    tasks = [asyncio.create_task(store.insert(7, name, Decimal("2"))) for name in "ab"]
    await blocked_insert_threads(admin, count=2)
    await admin.rollback()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert await deadlocks(admin) > before
    assert sorted(type(result).__name__ for result in results) == ["DuplicateId", "InfoRow"]
    assert await query(admin, "SELECT id FROM info") == [(7,)]


async def test_every_idle_connection_killed_is_survived(store: MySQLStore, admin: Any) -> None:
    await asyncio.gather(*(store.get(1) for _ in range(4)))
    victims = [conn.thread_id for conn in store.pool._idle]
    assert len(victims) >= 2
    for victim in victims:
        await query(admin, "KILL %s", (victim,))
    for victim in victims:
        await wait_until_gone(admin, victim)
    assert (await store.insert(None, "after", Decimal("1"))).name == "after"
    assert store.stats()["in_use"] == 0


async def test_a_dropped_table_is_created_again(store: MySQLStore, admin: Any) -> None:
    await store.insert(1, "a", Decimal("1"))
    await query(admin, "DROP TABLE info")
    assert await store.get(1) is None
    assert (await store.insert(None, "b", Decimal("1"))).id >= 1


async def test_a_missing_database_is_created(mysql_url: str, admin: Any, tmp_path: Path) -> None:
    name = f"quart_app_test_{uuid.uuid4().hex[:8]}"
    url = mysql_url.rsplit("/", 1)[0] + "/" + name
    store = mysql_store(url, tmp_path)
    try:
        await store.open()
        await store.insert(1, "x", Decimal("1"))
        rows = await query(
            admin,
            "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME = %s",
            (name,),
        )
        assert rows == [("utf8mb4",)]
    finally:
        await store.close()
        await query(admin, f"DROP DATABASE IF EXISTS `{name}`")


async def test_a_tutorial_shaped_table_is_a_clear_error(
    mysql_url: str, admin: Any, tmp_path: Path
) -> None:
    await query(admin, "CREATE TABLE info (id INT PRIMARY KEY, name VARCHAR(64), money DECIMAL)")
    store = mysql_store(mysql_url, tmp_path)
    try:
        with pytest.raises(StoreError, match="seq"):
            await store.open()
    finally:
        await store.close()


async def test_open_logs_nothing_when_the_server_answers(
    mysql_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = mysql_store(mysql_url, tmp_path)
    with caplog.at_level(logging.WARNING, logger="quart_app.db"):
        await store.open()
        await store.close()
    assert caplog.records == []


async def test_display_url_masks_the_password(tmp_path: Path) -> None:
    store = create_store(
        "mysql://app:s3cret@db.example:3307/school", PoolSettings(), base_dir=tmp_path
    )
    assert store.display_url == "mysql://app:***@db.example:3307/school"
    assert "s3cret" not in repr(store.stats())
