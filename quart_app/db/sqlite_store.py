"""The `info` table in an SQLite file: the embedded default, so a new user needs no server."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .errors import DuplicateId, StoreError, StoreUnavailable
from .models import InfoRow
from .pool_settings import PoolSettings
from .reachability import Reachability
from .schema import schema_statements
from .store import (
    MAX_ID,
    InfoStore,
    NewRow,
    check_limit,
    check_new_row,
    decode_cursor,
    encode_cursor,
)

T = TypeVar("T")

# One statement each, so every write is atomic and committed by SQLite itself (the
# connection runs in autocommit mode): no transaction can be left open by a cancelled task.
# With id NULL, AUTOINCREMENT picks it. A write statement takes the database's write lock
# before reading MAX(seq), so seq cannot race, not even with another process on the file.
_INSERT = (
    "INSERT INTO info (id, name, money_cents, seq)"
    " VALUES (?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM info)) RETURNING id"
)
_GET = "SELECT id, name, money_cents FROM info WHERE id = ?"
_FIRST_PAGE = "SELECT id, name, money_cents, seq FROM info ORDER BY seq DESC LIMIT ?"
_NEXT_PAGE = (
    "SELECT id, name, money_cents, seq FROM info WHERE seq < ? ORDER BY seq DESC LIMIT ?"
)
_CHECK_COLUMNS = "SELECT id, name, money_cents, seq FROM info LIMIT 0"
# Changes are compare-and-set on the row read before: one statement, atomic on its own.
_REPLACE = (
    "UPDATE info SET name = ?, money_cents = ? WHERE id = ? AND name = ? AND money_cents = ?"
    " RETURNING id"
)
_DELETE = "DELETE FROM info WHERE id = ? RETURNING id, name, money_cents"
_DELETE_EXPECTED = (
    "DELETE FROM info WHERE id = ? AND name = ? AND money_cents = ?"
    " RETURNING id, name, money_cents"
)
# Row k of a bulk statement takes seq = MAX(seq) + k: increasing in the statement's order
# whether SQLite evaluates the subquery once or per row. RETURNING's order is unspecified,
# so seq comes back to sort by.
_BULK_ROW = "(?, ?, ?, (SELECT COALESCE(MAX(seq), 0) FROM info) + ?)"
_BULK_INSERT = (
    "INSERT OR IGNORE INTO info (id, name, money_cents, seq) VALUES {values}"
    " RETURNING id, name, money_cents, seq"
)


class SQLiteStore(InfoStore):
    """`InfoStore` on one aiosqlite connection (SQLite serialises writers anyway).

    Money is stored as integer cents; the file runs in WAL mode with a busy timeout of
    `acquire_timeout` seconds, so several hypercorn workers can share it. A task cancelled
    while its statement runs cannot stop SQLite's thread: the statement still completes
    (an insert may be stored), and the connection stays consistent.
    """

    def __init__(self, path: str, settings: PoolSettings) -> None:
        self._path = path
        self._busy_timeout = settings.acquire_timeout
        self._conn: aiosqlite.Connection | None = None
        self._connect_lock = asyncio.Lock()
        self._closed = False
        self._reachability = Reachability(f"sqlite:///{path}", retry_after=5)
        self._in_flight = 0
        self._timeouts = 0

    @property
    def display_url(self) -> str:
        return f"sqlite:///{self._path}"

    @property
    def path(self) -> str:
        """The database file (or `:memory:`)."""
        return self._path

    async def open(self) -> None:
        self._closed = False
        try:
            await self._connection()
        except StoreUnavailable:
            pass  # logged once by _connection; the first request tries again
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._closed = True
        async with self._connect_lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()

    async def ensure_schema(self) -> None:
        await self._connection()

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute_fetchall("SELECT 1"))

    async def insert(self, id: int | None, name: str, money: Decimal) -> InfoRow:
        money = check_new_row(id, name, money)
        cents = int(money.scaleb(2))
        try:
            rows = await self._run(
                lambda conn: conn.execute_fetchall(_INSERT, (id, name, cents))
            )
        except sqlite3.IntegrityError as exc:
            if id is not None and "info.id" in str(exc):
                raise DuplicateId(id) from None
            raise StoreError(f"the database refused the row: {exc}") from exc
        (new_id,) = next(iter(rows))
        return InfoRow(int(new_id), name, money)

    async def get(self, id: int) -> InfoRow | None:
        if isinstance(id, bool) or not isinstance(id, int):
            raise TypeError(f"id must be an int, not {type(id).__name__}")
        if not 1 <= id <= MAX_ID:
            return None
        rows = list(await self._run(lambda conn: conn.execute_fetchall(_GET, (id,))))
        return _info_row(rows[0]) if rows else None

    async def list_page(self, limit: int, cursor: str | None) -> tuple[list[InfoRow], str | None]:
        check_limit(limit)
        after = None if cursor is None else decode_cursor(cursor)
        sql, params = (
            (_FIRST_PAGE, [limit + 1]) if after is None else (_NEXT_PAGE, [after, limit + 1])
        )
        rows = list(await self._run(lambda conn: conn.execute_fetchall(sql, params)))
        page = [_info_row(row) for row in rows[:limit]]
        next_cursor = encode_cursor(int(rows[limit - 1][3])) if len(rows) > limit else None
        return page, next_cursor

    async def _replace(self, current: InfoRow, row: InfoRow) -> bool:
        params = (row.name, _cents(row.money), row.id, current.name, _cents(current.money))
        return bool(list(await self._run(lambda conn: conn.execute_fetchall(_REPLACE, params))))

    async def _delete_row(self, id: int, expected: InfoRow | None) -> InfoRow | None:
        sql, params = (
            (_DELETE, (id,)) if expected is None
            else (_DELETE_EXPECTED, (id, expected.name, _cents(expected.money)))
        )
        rows = list(await self._run(lambda conn: conn.execute_fetchall(sql, params)))
        return _info_row(rows[0]) if rows else None

    async def _insert_rows(self, rows: Sequence[NewRow]) -> list[InfoRow]:
        if not rows:
            return []
        sql = _BULK_INSERT.format(values=", ".join([_BULK_ROW] * len(rows)))
        params = [value for position, (id, name, money) in enumerate(rows, start=1)
                  for value in (id, name, _cents(money), position)]
        stored = list(await self._run(lambda conn: conn.execute_fetchall(sql, params)))
        return [_info_row(row) for row in sorted(stored, key=lambda row: int(row[3]))]

    def stats(self) -> dict[str, int | float | str]:
        connected = int(self._conn is not None)
        return {
            "backend": "sqlite",
            "path": self._path,
            "size": connected,
            # Operations share the one connection and queue on its thread.
            "in_use": min(self._in_flight, connected),
            "idle": connected if not self._in_flight else 0,
            "waiting": max(self._in_flight - 1, 0),
            "timeouts": self._timeouts,
            "maxconnections": 1,
        }

    async def _run(
        self, op: Callable[[aiosqlite.Connection], Awaitable[Iterable[T]]]
    ) -> Iterable[T]:
        """Run `op`, mapping unreachable or locked databases to `StoreUnavailable` and
        re-creating the table once if it disappeared."""
        for attempt in (1, 2):
            conn = await self._connection()
            self._in_flight += 1
            try:
                return await op(conn)
            except sqlite3.OperationalError as exc:
                message = str(exc)
                if "no such table" in message and attempt == 1:
                    await self._drop_connection(conn)
                    continue
                if "locked" in message or "busy" in message:
                    self._timeouts += 1
                    raise StoreUnavailable(f"database busy: {message}", retry_after=1) from exc
                if "no such" in message:
                    raise StoreError(f"the database refused the statement: {message}") from exc
                await self._drop_connection(conn)
                raise self._reachability.down(message) from exc
            except (sqlite3.DatabaseError, ValueError) as exc:
                if isinstance(exc, sqlite3.IntegrityError):
                    raise
                # ValueError: aiosqlite's "Connection closed", e.g. during shutdown.
                await self._drop_connection(conn)
                raise self._reachability.down(str(exc)) from exc
            finally:
                self._in_flight -= 1
        raise AssertionError("unreachable")

    async def _connection(self) -> aiosqlite.Connection:
        if self._closed:
            raise StoreUnavailable("the database store is closed")
        conn = self._conn
        if conn is not None:
            return conn
        async with self._connect_lock:
            if self._conn is None:
                self._conn = await self._connect()
                self._reachability.up()
            return self._conn

    async def _connect(self) -> aiosqlite.Connection:
        conn: aiosqlite.Connection | None = None
        try:
            if self._path != ":memory:":
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(
                self._path, isolation_level=None, timeout=self._busy_timeout
            )
            if self._path != ":memory:":
                await conn.execute("PRAGMA journal_mode = WAL")
            for statement in schema_statements("schema_sqlite.sql"):
                await conn.execute(statement)
            try:
                await conn.execute(_CHECK_COLUMNS)
            except sqlite3.OperationalError as exc:
                raise StoreError(
                    f"table info in {self.display_url} lacks the columns this app needs "
                    f"(id, name, money_cents, seq): {exc}; see quart_app/db/schema_sqlite.sql"
                ) from exc
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.stop()
            raise self._reachability.down(str(exc)) from exc
        except BaseException:
            if conn is not None:
                conn.stop()
            raise
        return conn

    async def _drop_connection(self, conn: aiosqlite.Connection) -> None:
        if self._conn is conn:
            self._conn = None
            try:
                await conn.close()
            except Exception:
                conn.stop()


def _cents(money: Decimal) -> int:
    return int(money.scaleb(2))


def _info_row(row: Any) -> InfoRow:
    return InfoRow(int(row[0]), str(row[1]), Decimal(int(row[2])).scaleb(-2))
