"""MySQLStore updates and deletes on the real MariaDB when the answer does not come: the
server's time limit (nothing changed) and a connection lost after sending (unknown)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quart_app.db import InfoRow, PoolSettings, StoreUnavailable, create_store
from quart_app.db.mysql_store import MySQLStore

from ..support import query


@pytest.fixture
async def store(mysql_url: str, tmp_path: Path) -> AsyncIterator[MySQLStore]:
    store = create_store(mysql_url, PoolSettings.from_mapping({"query_timeout": 2}),
                         base_dir=tmp_path)
    assert isinstance(store, MySQLStore)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def blocked_thread(admin: Any, statement: str) -> int:
    """The server thread of the store's `statement` ("UPDATE"/"DELETE") waiting for a lock."""
    for _ in range(100):
        rows = await query(
            admin,
            "SELECT ID FROM information_schema.PROCESSLIST "
            "WHERE DB = DATABASE() AND INFO LIKE %s",
            (f"SET STATEMENT%{statement} %info%",),
        )
        if rows:
            return int(rows[0][0])
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {statement} is waiting")


@pytest.fixture
async def locked_row(store: MySQLStore, admin: Any) -> AsyncIterator[InfoRow]:
    """Row 7, locked by the admin connection's open transaction until the test ends."""
    row = await store.insert(7, "locked", Decimal("1"))
    await admin.begin()
    await query(admin, "SELECT id FROM info WHERE id = 7 FOR UPDATE")
    yield row
    await admin.rollback()


@pytest.mark.parametrize("statement", ["UPDATE", "DELETE"])
async def test_a_connection_lost_after_sending_is_an_unknown_outcome_not_a_retry(
    store: MySQLStore, admin: Any, locked_row: InfoRow, statement: str
) -> None:
    created = store.stats()["created"]
    change = (store.update(7, "store", Decimal("2")) if statement == "UPDATE"
              else store.delete(7))
    task = asyncio.create_task(change)
    await query(admin, "KILL %s", (await blocked_thread(admin, statement),))
    with pytest.raises(StoreUnavailable, match="may or may not have been applied") as caught:
        await task
    assert caught.value.retry_after > 0
    # Not sent again on a new connection: it would have waited for the lock and applied.
    assert store.stats()["created"] == created
    assert await query(admin, "SELECT id, name FROM info") == [(7, "locked")]


@pytest.mark.parametrize("statement", ["UPDATE", "DELETE"])
async def test_the_servers_time_limit_changes_nothing(
    store: MySQLStore, admin: Any, locked_row: InfoRow, statement: str
) -> None:
    with pytest.raises(StoreUnavailable, match="within 2s; nothing was changed"):
        if statement == "UPDATE":
            await store.update(7, "store", Decimal("2"))
        else:
            await store.delete(7)
    assert await query(admin, "SELECT id, name FROM info") == [(7, "locked")]
    assert store.stats()["in_use"] == 0
