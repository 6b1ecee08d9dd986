"""The id space: a client's largest id never stops the store assigning ids, and a statement
the database refuses is a refusal (nothing stored, connection kept), never an outage."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest

from quart_app import create_app
from quart_app.db import (
    MAX_ID,
    MAX_ROW_ID,
    InfoStore,
    PoolSettings,
    RowRefused,
    StoreRefused,
    create_store,
)
from quart_app.db.mysql_pool import MySQLPool, is_disconnect
from quart_app.db.mysql_store import MySQLStore
from quart_app.db.sqlite_store import SQLiteStore

from ..support import query

ONE = Decimal("1")

# What versions before the 64-bit ids created; a table made by them must keep working.
OLD_SQLITE_TABLE = """
CREATE TABLE info (
    id INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id BETWEEN 1 AND 2147483647),
    name TEXT NOT NULL CHECK (length(name) <= 64),
    money_cents INTEGER NOT NULL CHECK (abs(money_cents) < 1000000000000),
    seq INTEGER NOT NULL UNIQUE
)"""
OLD_MYSQL_TABLE = """
CREATE TABLE info (
    id INT NOT NULL AUTO_INCREMENT,
    name VARCHAR(64) NOT NULL,
    money DECIMAL(12, 2) NOT NULL,
    seq BIGINT NOT NULL DEFAULT NEXTVAL(info_seq),
    PRIMARY KEY (id),
    UNIQUE KEY info_by_seq (seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci"""

# Earlier still: `seq` was the AUTO_INCREMENT column and ids came only from clients.
OLDEST_MYSQL_TABLE = """
CREATE TABLE info (
    id INT NOT NULL,
    name VARCHAR(64) NOT NULL,
    money DECIMAL(12, 2) NOT NULL,
    seq BIGINT NOT NULL AUTO_INCREMENT,
    PRIMARY KEY (id),
    UNIQUE KEY seq (seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"""


def open_store(url: str, tmp_path: Path) -> InfoStore:
    return create_store(url, PoolSettings(), base_dir=tmp_path)


@pytest.fixture
async def opened(store_url: str, tmp_path: Path) -> AsyncIterator[InfoStore]:
    store = open_store(store_url, tmp_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def connection_figures(store: InfoStore) -> tuple[Any, ...]:
    """What changes when a store throws a connection away (MariaDB: opened and closed)."""
    stats = store.stats()
    return stats.get("created"), stats.get("discarded"), stats["size"]


async def write_directly(store: InfoStore, admin_sql: str, *args: Any) -> None:
    """Change the table behind the store's back, as an operator (or an old version) might."""
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path, isolation_level=None)
        try:
            conn.execute(admin_sql.replace("%s", "?"), args)
        finally:
            conn.close()
        return
    assert isinstance(store, MySQLStore)
    async with store.pool.connection() as conn:
        await query(conn.raw, admin_sql, args)


# --- the cause: client ids leave room for assigned ones ------------------------------------


async def test_inserts_without_an_id_go_on_after_the_largest_client_id(
    opened: InfoStore,
) -> None:
    await opened.insert(MAX_ID, "top", ONE)
    assigned = [await opened.insert(None, f"after {n}", ONE) for n in range(3)]
    assert [row.id for row in assigned] == [MAX_ID + 1, MAX_ID + 2, MAX_ID + 3]
    assert await opened.get(MAX_ID + 2) == assigned[1]
    page, _ = await opened.list_page(10, None)
    assert [row.id for row in page] == [MAX_ID + 3, MAX_ID + 2, MAX_ID + 1, MAX_ID]


async def test_ids_no_row_can_have_are_simply_absent(opened: InfoStore) -> None:
    assert await opened.get(MAX_ROW_ID) is None
    assert await opened.get(MAX_ROW_ID + 1) is None
    assert await opened.get(10**40) is None


async def test_the_api_keeps_inserting_after_a_client_took_the_largest_id(
    store_url: str,
) -> None:
    app = create_app({"DATABASE_URL": store_url, "CACHE_TYPE": "SimpleCache"})
    async with app.test_app():
        client = app.test_client()
        top = await client.post("/api/info", json={"id": MAX_ID, "name": "x", "money": "1"})
        assert top.status_code == 201
        store: InfoStore = app.extensions["database"].store
        before = connection_figures(store)
        for expected in (MAX_ID + 1, MAX_ID + 2):
            response = await client.post("/api/info", json={"name": "y", "money": "1"})
            assert response.status_code == 201, await response.get_data(as_text=True)
            assert (await response.get_json())["id"] == expected
            read = await client.get(response.headers["Location"])
            assert (await read.get_json())["id"] == expected
        assert connection_figures(store) == before


async def test_rows_with_assigned_ids_past_the_client_range_can_be_changed(
    store_url: str,
) -> None:
    app = create_app({"DATABASE_URL": store_url, "CACHE_TYPE": "SimpleCache"})
    async with app.test_app():
        client = app.test_client()
        await client.post("/api/info", json={"id": MAX_ID, "name": "x", "money": "1"})
        created = await client.post("/api/info", json={"name": "y", "money": "1"})
        row_url = created.headers["Location"]
        assert (await created.get_json())["id"] == MAX_ID + 1
        patched = await client.patch(row_url, json={"money": "2.50"})
        assert patched.status_code == 200, await patched.get_data(as_text=True)
        assert (await patched.get_json())["money"] == "2.50"
        put = await client.put(row_url, json={"name": "z", "money": "3"})
        assert put.status_code == 200, await put.get_data(as_text=True)
        assert (await client.delete(row_url)).status_code == 204
        assert (await client.get(row_url)).status_code == 404


async def test_an_older_sqlite_table_is_widened_keeping_rows_and_counter(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute(OLD_SQLITE_TABLE)
    old.execute("INSERT INTO info VALUES (7, 'kept', 123, 1), (40, 'gone', 1, 2)")
    old.execute("DELETE FROM info WHERE id = 40")  # AUTOINCREMENT never hands out 40 again
    old.close()
    store = open_store(f"sqlite:///{path}", tmp_path)
    await store.open()
    try:
        assert (await store.insert(None, "next", ONE)).id == 41
        await store.insert(MAX_ID, "top", ONE)
        assert (await store.insert(None, "beyond", ONE)).id == MAX_ID + 1
        assert await store.get(7) is not None
        assert (await store.get(7)).money == Decimal("1.23")  # type: ignore[union-attr]
    finally:
        await store.close()
    check = sqlite3.connect(path)
    try:
        (table_sql,) = check.execute("SELECT sql FROM sqlite_master WHERE name = 'info'").fetchone()
    finally:
        check.close()
    assert "2147483647" not in table_sql


async def test_an_older_mariadb_table_is_widened_keeping_its_rows(
    mysql_url: str, admin: Any, tmp_path: Path
) -> None:
    await query(admin, "CREATE SEQUENCE info_seq")
    await query(admin, OLD_MYSQL_TABLE)
    await query(admin, "INSERT INTO info (id, name, money) VALUES (7, 'kept', 1.23)")
    store = open_store(mysql_url, tmp_path)
    await store.open()
    try:
        await store.insert(MAX_ID, "top", ONE)
        assert (await store.insert(None, "beyond", ONE)).id == MAX_ID + 1
        kept = await store.get(7)
        assert kept is not None and kept.money == Decimal("1.23")
    finally:
        await store.close()
    ((data_type,),) = await query(
        admin, "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
               " AND TABLE_NAME = 'info' AND COLUMN_NAME = 'id'")
    assert data_type == "bigint"


async def test_an_oldest_mariadb_table_with_an_auto_increment_seq_is_brought_up_to_date(
    mysql_url: str, admin: Any, tmp_path: Path
) -> None:
    # Found by the benchmark's long-lived database: the id ALTER alone failed (error 1075,
    # two AUTO_INCREMENT columns), so the app did not start at all.
    await query(admin, OLDEST_MYSQL_TABLE)
    await query(admin, "INSERT INTO info (id, name, money) VALUES (7, 'older', 1), "
                       "(3, 'newer', 2)")
    store = open_store(mysql_url, tmp_path)
    await store.open()
    try:
        assigned = await store.insert(None, "newest", ONE)
        assert assigned.id == 8  # after the largest id
        page, _ = await store.list_page(10, None)
        assert [row.name for row in page] == ["newest", "newer", "older"]  # order kept
    finally:
        await store.close()


# --- the classification: a refusal is not an outage ---------------------------------------


async def test_no_id_left_to_assign_is_a_refusal_that_keeps_the_connection(
    opened: InfoStore,
) -> None:
    # Only an operator can get here now (clients stop at MAX_ID); SQLite answers
    # SQLITE_FULL, MariaDB error 167.
    await opened.insert(1, "first", ONE)
    await write_directly(opened, "UPDATE info SET id = %s WHERE id = 1", MAX_ROW_ID)
    before = connection_figures(opened)
    with pytest.raises(StoreRefused) as refused:
        await opened.insert(None, "no room", ONE)
    assert "may or may not" not in str(refused.value)
    assert "nothing was stored" in str(refused.value)
    assert connection_figures(opened) == before
    assert (await opened.insert(5, "chosen", ONE)).id == 5
    assert connection_figures(opened) == before


async def test_a_value_the_table_refuses_is_the_clients_field(opened: InfoStore) -> None:
    # A table narrowed by hand: the database, not check_new_row, refuses the name.
    if isinstance(opened, SQLiteStore):
        await write_directly(opened, "CREATE TRIGGER short_names BEFORE INSERT ON info "
                                     "WHEN length(NEW.name) > 3 BEGIN "
                                     "SELECT RAISE(ABORT, 'CHECK constraint failed: name'); END")
    else:
        await write_directly(opened, "ALTER TABLE info MODIFY name VARCHAR(3) NOT NULL")
    before = connection_figures(opened)
    with pytest.raises(RowRefused) as refused:
        await opened.insert(None, "too long", ONE)
    assert refused.value.field == "name"
    assert connection_figures(opened) == before
    assert (await opened.insert(None, "ok", ONE)).name == "ok"


async def test_the_api_answers_a_refusal_with_503_not_500(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'full.sqlite3'}"})
    async with app.test_app():
        client = app.test_client()
        assert (await client.post("/api/info", json={"name": "a", "money": 1})).status_code == 201
        await write_directly(app.extensions["database"].store,
                             "UPDATE info SET id = %s", MAX_ROW_ID)
        response = await client.post("/api/info", json={"name": "b", "money": 1},
                                     headers={"X-Request-ID": "req-full"})
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        body = await response.get_json()
        assert body["error"] == "database_unavailable"
        assert "nothing was stored" in body["message"]
        chosen = await client.post("/api/info", json={"id": 9, "name": "c", "money": 1})
        assert chosen.status_code == 201
    # SQLite's own words stay in the log, with the request they answered.
    logged = [r.getMessage() for r in caplog.records if "req-full" in r.getMessage()]
    assert any("database or disk is full" in message for message in logged)


@pytest.mark.parametrize("code", [167, 1062, 1264, 1366, 1406, 1969, 3024, 4025])
async def test_a_statement_the_server_refuses_keeps_the_pooled_connection(
    make_pool: Any, code: int
) -> None:
    pool: MySQLPool = make_pool(mincached=0, maxcached=5)
    async with pool.connection() as conn:
        first = conn.thread_id
    with pytest.raises(pymysql.err.MySQLError) as refused:
        async with pool.connection() as conn:
            await query(conn.raw, "SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = %s, "
                                  "MESSAGE_TEXT = 'refused by the server'", (code,))
    assert not is_disconnect(refused.value)
    assert pool.stats()["discarded"] == 0
    async with pool.connection() as conn:
        assert conn.thread_id == first


async def test_the_api_answers_a_refused_value_with_400_naming_the_field(
    tmp_path: Path,
) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'narrow.sqlite3'}"})
    async with app.test_app():
        await write_directly(app.extensions["database"].store,
                             "CREATE TRIGGER short_names BEFORE INSERT ON info "
                             "WHEN length(NEW.name) > 3 BEGIN "
                             "SELECT RAISE(ABORT, 'CHECK constraint failed: name'); END")
        response = await app.test_client().post("/api/info", json={"name": "long", "money": 1})
        assert response.status_code == 400
        body = await response.get_json()
        assert body["error"] == "invalid_request"
        assert [problem["field"] for problem in body["fields"]] == ["name"]


def cursor_for(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("text", [f"s{MAX_ROW_ID + 1}", "s" + "9" * 5000, "s" + "0" * 30 + "1"])
async def test_cursors_beyond_the_range_or_forged_are_value_errors(
    opened: InfoStore, text: str
) -> None:
    with pytest.raises(ValueError):
        await opened.list_page(10, cursor_for(text))


async def test_a_cursor_at_the_top_of_the_range_pages_from_the_newest(opened: InfoStore) -> None:
    rows = [await opened.insert(None, f"n{n}", ONE) for n in range(3)]
    page, _ = await opened.list_page(10, cursor_for(f"s{MAX_ROW_ID}"))
    assert page == rows[::-1]


@pytest.mark.parametrize(("constraint", "field"), [
    ("MODIFY name VARCHAR(64) NOT NULL CHECK (length(name) <= 3)", "name"),  # a column's
    ("ADD CONSTRAINT short_rows CHECK (length(name) + money < 5)", "body"),  # the table's
])
async def test_a_check_constraint_names_its_column_or_the_row(
    mysql_url: str, tmp_path: Path, constraint: str, field: str
) -> None:
    store = open_store(mysql_url, tmp_path)
    await store.open()
    try:
        await write_directly(store, f"ALTER TABLE info {constraint}")
        with pytest.raises(RowRefused) as refused:
            await store.insert(None, "long", ONE)
        assert refused.value.field == field
    finally:
        await store.close()
