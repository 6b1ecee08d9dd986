"""The `info` table in an SQLite file: the embedded default, so a new user needs no server."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .errors import DuplicateId, RowRefused, StoreError, StoreRefused, StoreUnavailable
from .models import InfoRow
from .pool_settings import PoolSettings
from .reachability import Reachability
from .schema import schema_statements
from .store import (
    InfoStore,
    NewRow,
    check_limit,
    check_new_row,
    decode_cursor,
    encode_cursor,
    is_row_id,
)

T = TypeVar("T")
log = logging.getLogger("quart_app.db")

# Primary result codes (the low byte of sqlite_errorcode).
_BUSY = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
# The file is gone or unreadable: reconnecting is the only hope.
_FILE_LOST = frozenset({3, 10, 11, 14, 26})  # PERM, IOERR, CORRUPT, CANTOPEN, NOTADB
_CODE_NAMES = {13: "full", 8: "read-only", 18: "too big", 20: "type mismatch", 1: "error"}

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
            # check_new_row lets nothing else through; a table changed by hand might.
            raise RowRefused(_refused_column(str(exc)), "the database refused it") from exc
        (new_id,) = next(iter(rows))
        return InfoRow(int(new_id), name, money)

    async def get(self, id: int) -> InfoRow | None:
        if not is_row_id(id):
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
        """Run `op`, re-creating the table once if it disappeared.

        Only a file that cannot be read or written any more drops the connection and counts
        as an outage; anything else SQLite refuses (a full disk or id space, a constraint)
        leaves the connection as it is, for the next request.
        """
        for attempt in (1, 2):
            conn = await self._connection()
            self._in_flight += 1
            try:
                return await op(conn)
            except sqlite3.IntegrityError:
                raise  # the row's own fault: insert() says which
            except sqlite3.Error as exc:
                message = str(exc)
                code = _primary_code(exc)
                if "no such table" in message and attempt == 1:
                    await self._drop_connection(conn)
                    continue
                if code in _BUSY:
                    self._timeouts += 1
                    raise StoreRefused("database busy", retry_after=1) from exc
                if code in _FILE_LOST:
                    await self._drop_connection(conn)
                    raise self._reachability.down(message) from exc
                raise StoreRefused(
                    f"the database refused the statement ({_CODE_NAMES.get(code, 'error')});"
                    " nothing was stored", detail=message,
                ) from exc
            except ValueError as exc:
                # aiosqlite's "Connection closed", e.g. during shutdown.
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
            await _widen_ids(conn)
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


def _primary_code(exc: sqlite3.Error) -> int:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else 0


def _refused_column(message: str) -> str:
    """The column a constraint message names ("CHECK constraint failed: length(name) ...")."""
    for column in ("money_cents", "name", "id"):
        if re.search(rf"\b{column}\b", message):
            return "money" if column == "money_cents" else column
    return "body"


# Versions before the 64-bit ids capped the column at the client's range, so an insert
# without id after a client took 2147483647 failed the CHECK, forever.
_OLD_ID_CHECK = "2147483647"
_TABLE_SQL = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'info'"


async def _widen_ids(conn: aiosqlite.Connection) -> None:
    """Rebuild a table made by an older version without its 31-bit id CHECK.

    SQLite cannot drop a CHECK in place: copy the rows into a table of the current shape,
    keeping the AUTOINCREMENT counter, in one transaction that other workers wait for.
    """
    rows = list(await conn.execute_fetchall(_TABLE_SQL))
    if not rows or _OLD_ID_CHECK not in str(rows[0][0]):
        return
    (create,) = schema_statements("schema_sqlite.sql")
    create = create.replace("CREATE TABLE IF NOT EXISTS info (", "CREATE TABLE info_widened (", 1)
    await conn.execute("BEGIN IMMEDIATE")
    try:
        rows = list(await conn.execute_fetchall(_TABLE_SQL))
        if rows and _OLD_ID_CHECK in str(rows[0][0]):  # another worker may have done it
            counter = list(await conn.execute_fetchall(
                "SELECT seq FROM sqlite_sequence WHERE name = 'info'"))
            await conn.execute("DROP TABLE IF EXISTS info_widened")
            await conn.execute(create)
            await conn.execute("INSERT INTO info_widened (id, name, money_cents, seq)"
                               " SELECT id, name, money_cents, seq FROM info")
            await conn.execute("DROP TABLE info")
            await conn.execute("ALTER TABLE info_widened RENAME TO info")
            if counter:
                await conn.execute("DELETE FROM sqlite_sequence WHERE name = 'info'")
                await conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('info', ?)",
                                   (max(int(counter[0][0]), await _max_id(conn)),))
            log.warning("table info: ids widened to 64 bits (rebuilt without the old "
                        "CHECK id <= 2147483647)")
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolls back by itself after some errors
            await conn.execute("ROLLBACK")
        raise


async def _max_id(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("SELECT COALESCE(MAX(id), 0) FROM info"))
    return int(rows[0][0])


def _info_row(row: Any) -> InfoRow:
    return InfoRow(int(row[0]), str(row[1]), Decimal(int(row[2])).scaleb(-2))
