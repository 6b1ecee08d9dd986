"""The `info` table on MySQL or MariaDB, through `MySQLPool`."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import aiomysql
import pymysql
from pymysql.constants import ER

from .errors import DuplicateId, RowRefused, StoreError, StoreRefused, StoreUnavailable
from .models import InfoRow
from .mysql_pool import MySQLPool, error_code, is_disconnect, is_server_error
from .pool_settings import PoolSettings
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
from .urls import MySQLAddress

T = TypeVar("T")
log = logging.getLogger("quart_app.db")

# With id NULL, AUTO_INCREMENT picks the id; seq comes from its column default. The server
# aborts an insert still running after the limit (a lock wait, say), so a slow insert ends
# in a definite "not stored" even when its client has stopped waiting.
_INSERT = (
    "SET STATEMENT max_statement_time = {seconds:.3f} FOR "
    "INSERT INTO info (id, name, money) VALUES (%s, %s, %s)"
)
_GET = "SELECT id, name, money FROM info WHERE id = %s"
_FIRST_PAGE = "SELECT id, name, money, seq FROM info ORDER BY seq DESC LIMIT %s"
_NEXT_PAGE = "SELECT id, name, money, seq FROM info WHERE seq < %s ORDER BY seq DESC LIMIT %s"
_CHECK_COLUMNS = "SELECT id, name, money, seq FROM info LIMIT 0"
# Changes are one autocommit statement each, compare-and-set on the row read before. Names
# compare byte for byte: the column's collation would call "Redis" and "redis " equal.
_LIMITED = "SET STATEMENT max_statement_time = {seconds:.3f} FOR "
_REPLACE = (
    "UPDATE info SET name = %s, money = %s WHERE id = %s AND BINARY name = %s AND money = %s"
)
_DELETE = "DELETE FROM info WHERE id = %s RETURNING id, name, money"
_DELETE_EXPECTED = (
    "DELETE FROM info WHERE id = %s AND BINARY name = %s AND money = %s"
    " RETURNING id, name, money"
)
# IGNORE skips a row whose id is taken and stores the others; RETURNING gives the stored
# rows in the order they were inserted (MariaDB 10.5+), seq included to be sure of it.
_BULK_INSERT = (
    "INSERT IGNORE INTO info (id, name, money) VALUES {values} RETURNING id, name, money, seq"
)

_INSERT_ATTEMPTS = 5
_RETRYABLE = frozenset({ER.LOCK_DEADLOCK})
_STATEMENT_TIMEOUT = 1969  # ER_STATEMENT_TIMEOUT (MariaDB): max_statement_time exceeded
# How much longer than the server's limit the client waits for the server's own answer.
_SERVER_ANSWER_GRACE = 1.0
_NO_SUCH_TABLE = 1146
_BAD_FIELD = 1054
# The server's limits on one statement: nothing was stored, trying later may work.
_TIME_LIMITS = frozenset({_STATEMENT_TIMEOUT, 3024, ER.LOCK_WAIT_TIMEOUT})
# AUTO_INCREMENT has no next value (HA_ERR_AUTOINC_ERANGE, ER_AUTOINC_READ_FAILED).
_IDS_EXHAUSTED = frozenset({167, 1467})
# A value that does not fit its column: out of range, too long, not a valid string or
# number, NULL, truncated, a CHECK constraint (MariaDB's 4025, MySQL's 3819).
_VALUE_REFUSED = frozenset({1048, 1264, 1265, 1366, 1406, 3819, 4025})
# "... for column 'name' at row 1", "CONSTRAINT `info.name` failed for `db`.`info`".
_COLUMN = re.compile(r"[`'](\w+)[`'] at row|CONSTRAINT [`'](?:\w+\.)?(\w+)[`']")
_FIELDS = frozenset({"id", "name", "money"})


class MySQLStore(InfoStore):
    """`InfoStore` on MySQL/MariaDB.

    Autocommit discipline: every pooled connection runs with autocommit on, so a read is
    one statement that sees the latest committed rows and leaves no transaction open, and
    an insert is one statement (one round trip) that the server commits before it answers:
    `insert()` returns only after that answer. A statement the server refuses (a duplicate
    id, a deadlock, the insert's time limit) stored nothing. The pool refuses any
    connection still inside a transaction.

    Ids: an insert without an id gets InnoDB's AUTO_INCREMENT value, which is race-free
    without retries; a client-given id moves the counter past itself.

    Retries: a read that fails because a reused connection turned out dead is run again
    once on a new connection. An insert never is once sent: the server may have committed
    it before the connection broke, so a lost connection, a client-side timeout or a
    cancellation after sending leaves its outcome unknown (`StoreUnavailable` says the
    row may or may not be stored). The pool checks, without a round trip, that an idle
    connection's server has not hung up before handing it out. An insert chosen as a
    deadlock victim is retried.
    """

    def __init__(self, address: MySQLAddress, settings: PoolSettings) -> None:
        self._settings = settings
        self._pool = MySQLPool(address, settings)
        self._insert_sql = _INSERT.format(seconds=settings.query_timeout)
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()

    @property
    def display_url(self) -> str:
        return self._pool.display_url

    @property
    def pool(self) -> MySQLPool:
        """The connection pool (for tests and diagnostics)."""
        return self._pool

    async def open(self) -> None:
        self._pool.reopen()
        try:
            await self.ensure_schema()
            await self._pool.fill(self._settings.mincached)
        except StoreUnavailable:
            pass  # the pool logged the one warning; the first request connects again
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self._pool.close()

    async def ensure_schema(self) -> None:
        if self._schema_ready:
            return
        async with self._schema_lock:
            if self._schema_ready:
                return
            try:
                await self._run(_create_schema)
            except pymysql.err.MySQLError as exc:
                if error_code(exc) == _BAD_FIELD:
                    raise StoreError(
                        f"table info in {self.display_url} lacks the columns this app needs "
                        f"(id, name, money, seq): {exc}; see quart_app/db/schema_mysql.sql"
                    ) from exc
                if is_server_error(exc):
                    # Not an outage: open() must stop start-up with it.
                    raise StoreError(f"creating the schema failed: {exc}") from exc
                raise _store_error(exc) from exc
            self._schema_ready = True

    async def ping(self) -> None:
        try:
            await self._run(_select_one)
        except pymysql.err.MySQLError as exc:
            raise StoreUnavailable("the database did not answer a ping", detail=str(exc)) from exc

    async def insert(self, id: int | None, name: str, money: Decimal) -> InfoRow:
        money = check_new_row(id, name, money)

        async def insert_row(raw: Any) -> int:
            return await _insert_row(raw, self._insert_sql, id, name, money)

        try:
            new_id = await self._execute(insert_row, resend=False)
        except pymysql.err.MySQLError as exc:
            raise _insert_refused(exc, id, self._settings.query_timeout) from exc
        return InfoRow(new_id, name, money)

    async def get(self, id: int) -> InfoRow | None:
        if not is_row_id(id):
            return None

        async def query(raw: Any) -> InfoRow | None:
            async with raw.cursor() as cur:
                await cur.execute(_GET, (id,))
                row = await cur.fetchone()
            return None if row is None else _info_row(row)

        return await self._reading(query)

    async def list_page(self, limit: int, cursor: str | None) -> tuple[list[InfoRow], str | None]:
        check_limit(limit)
        after = None if cursor is None else decode_cursor(cursor)

        async def query(raw: Any) -> list[tuple[Any, ...]]:
            async with raw.cursor() as cur:
                if after is None:
                    await cur.execute(_FIRST_PAGE, (limit + 1,))
                else:
                    await cur.execute(_NEXT_PAGE, (after, limit + 1))
                return list(await cur.fetchall())

        rows = await self._reading(query)
        page = [_info_row(row) for row in rows[:limit]]
        next_cursor = encode_cursor(int(rows[limit - 1][3])) if len(rows) > limit else None
        return page, next_cursor

    async def _replace(self, current: InfoRow, row: InfoRow) -> bool:
        params = (row.name, row.money, row.id, current.name, current.money)

        async def replace(raw: Any) -> int:
            async with raw.cursor() as cur:
                return int(await cur.execute(self._limited(_REPLACE), params))

        return bool(await self._writing(replace, "the update"))

    async def _delete_row(self, id: int, expected: InfoRow | None) -> InfoRow | None:
        sql, params = (
            (_DELETE, (id,)) if expected is None
            else (_DELETE_EXPECTED, (id, expected.name, expected.money))
        )

        async def delete(raw: Any) -> InfoRow | None:
            async with raw.cursor() as cur:
                await cur.execute(self._limited(sql), params)
                row = await cur.fetchone()
            return None if row is None else _info_row(row)

        return await self._writing(delete, "the delete")

    async def _insert_rows(self, rows: Sequence[NewRow]) -> list[InfoRow]:
        if not rows:
            return []
        sql = self._limited(_BULK_INSERT.format(values=", ".join(["(%s, %s, %s)"] * len(rows))))
        params = [value for row in rows for value in row]

        async def insert(raw: Any) -> list[tuple[Any, ...]]:
            async with raw.cursor(_QuietCursor) as cur:
                await cur.execute(sql, params)
                return list(await cur.fetchall())

        stored = await self._writing(insert, "the bulk insert")
        return [_info_row(row) for row in sorted(stored, key=lambda row: int(row[3]))]

    def _limited(self, sql: str) -> str:
        return _LIMITED.format(seconds=self._settings.query_timeout) + sql

    async def _writing(self, op: Callable[[Any], Awaitable[T]], what: str) -> T:
        """Run a write once (never resent: the server may have committed it), with the
        insert's error meanings."""
        try:
            return await self._execute(op, resend=False)
        except _WriteOutcomeUnknown as exc:
            raise StoreUnavailable(
                f"no answer to {what} after it was sent: it may or may not have been applied"
            ) from exc
        except pymysql.err.MySQLError as exc:
            code = error_code(exc)
            if code in _RETRYABLE:
                raise StoreUnavailable(f"database busy: {exc}", retry_after=1) from exc
            if code == _STATEMENT_TIMEOUT:
                raise StoreUnavailable(
                    f"the database did not finish {what} within "
                    f"{self._settings.query_timeout:g}s; nothing was changed"
                ) from exc
            raise _store_error(exc) from exc

    def stats(self) -> dict[str, int | float | str]:
        return {"backend": "mysql", **self._pool.stats()}

    async def _reading(self, query: Callable[[Any], Awaitable[T]]) -> T:
        try:
            return await self._execute(query)
        except pymysql.err.MySQLError as exc:
            raise _store_error(exc) from exc

    async def _execute(self, op: Callable[[Any], Awaitable[T]], *, resend: bool = True) -> T:
        """`_run` after making sure the table exists, again if someone dropped it."""
        await self.ensure_schema()
        try:
            return await self._run(op, resend=resend)
        except pymysql.err.MySQLError as exc:
            if error_code(exc) != _NO_SUCH_TABLE:
                raise
            self._schema_ready = False
        await self.ensure_schema()
        return await self._run(op, resend=resend)

    async def _run(self, op: Callable[[Any], Awaitable[T]], *, resend: bool = True) -> T:
        """Run `op` on a pooled connection within `query_timeout`.

        Errors the server reported are raised as they are. With `resend`, a lost
        connection becomes `StoreUnavailable`, after one more try when the lost one came
        from the idle list. Without it (a write the server may have committed before the
        connection broke), a lost connection or a timeout is `_WriteOutcomeUnknown`; the
        client then waits a little past `query_timeout`, for the server's own time limit
        to answer first.
        """
        timeout = self._settings.query_timeout
        wait = timeout if resend else timeout + _SERVER_ANSWER_GRACE
        for attempt in (1, 2):
            reused = False
            try:
                async with self._pool.connection() as conn:
                    reused = conn.reused
                    async with asyncio.timeout(wait):
                        return await op(conn.raw)
            except TimeoutError:
                if not resend:
                    raise _WriteOutcomeUnknown(
                        f"the database did not answer within {wait:g}s", None
                    ) from None
                raise StoreUnavailable(
                    f"the database did not answer within {timeout:g}s", retry_after=3
                ) from None
            except pymysql.err.MySQLError as exc:
                if not is_disconnect(exc):
                    raise
                if not resend:
                    raise _WriteOutcomeUnknown("lost the database connection", exc) from exc
                if attempt == 1 and reused:
                    log.info("database connection found dead (%s); retrying on a new one", exc)
                    continue
                raise _store_error(exc) from exc
        raise AssertionError("unreachable")


class _WriteOutcomeUnknown(StoreUnavailable):
    """A write was sent but no answer came back: the row may or may not be stored."""

    def __init__(self, cause: str, error: BaseException | None) -> None:
        super().__init__(f"{cause} after the insert was sent: the row may or may not be stored",
                         detail=None if error is None else str(error))


class _QuietCursor(aiomysql.Cursor):  # type: ignore[misc]
    """INSERT IGNORE reports each skipped duplicate as a warning; aiomysql would fetch them
    in another round trip and raise them as Python warnings. The outcomes say it instead."""

    async def _show_warnings(self, conn: Any) -> None:
        return None


async def _insert_row(raw: Any, sql: str, id: int | None, name: str, money: Decimal) -> int:
    """Insert one row in one autocommit statement; retried here when a deadlock victim."""
    for attempt in range(_INSERT_ATTEMPTS):
        try:
            async with raw.cursor() as cur:
                await cur.execute(sql, (id, name, money))
                new_id = cur.lastrowid if id is None else id
        except pymysql.err.MySQLError as exc:
            # A deadlock victim's statement was rolled back whole: sending it again is safe.
            if error_code(exc) not in _RETRYABLE or attempt == _INSERT_ATTEMPTS - 1:
                raise
            await asyncio.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 5)))
            continue
        if raw.get_transaction_status():
            # Autocommit got switched off: the row would be lost with the connection.
            raise StoreError("the insert ran inside a transaction; autocommit must be on")
        return int(new_id)
    raise AssertionError("unreachable")


_SCHEMA_LOCK = "quart_app.schema"
_SCHEMA_LOCK_SECONDS = 30


async def _create_schema(raw: Any) -> None:
    server = raw.get_server_info()
    if "MariaDB" not in server:
        raise StoreError(f"the MySQL store needs MariaDB 10.3 or later (sequences), not {server}")
    async with raw.cursor() as cur:
        # Workers start together: two concurrent CREATE ... IF NOT EXISTS can see the
        # sequence but not yet the table, so they take turns under a server-wide lock.
        await cur.execute("SELECT GET_LOCK(%s, %s)", (_SCHEMA_LOCK, _SCHEMA_LOCK_SECONDS))
        try:
            # "Already exists" notes would come back as Python warnings on every start.
            await cur.execute("SET SESSION sql_notes = 0")
            for statement in schema_statements("schema_mysql.sql"):
                await cur.execute(statement)
            await cur.execute("SET SESSION sql_notes = 1")
            await cur.execute(_CHECK_COLUMNS)
            await _widen_ids(cur)
        finally:
            await cur.execute("SELECT RELEASE_LOCK(%s)", (_SCHEMA_LOCK,))


# Versions before the 64-bit ids made `id` an INT: after a client took 2147483647, every
# insert without an id failed (error 167), forever.
_ID_TYPE = (
    "SELECT DATA_TYPE FROM information_schema.COLUMNS"
    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'info' AND COLUMN_NAME = 'id'"
)
_WIDEN_IDS = "ALTER TABLE info MODIFY id BIGINT NOT NULL AUTO_INCREMENT"
# Earlier still, `seq` was the table's AUTO_INCREMENT column and `id` had none: MariaDB allows
# one per table, so `seq` moves to the sequence (past its largest value) in the same ALTER.
_SEQ_IS_AUTO = (
    "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
    " AND TABLE_NAME = 'info' AND COLUMN_NAME = 'seq' AND EXTRA LIKE '%%auto_increment%%'"
)
_SEQ_TO_SEQUENCE = ("ALTER TABLE info MODIFY seq BIGINT NOT NULL DEFAULT NEXTVAL(info_seq),"
                    " MODIFY id BIGINT NOT NULL AUTO_INCREMENT")


async def _widen_ids(cur: Any) -> None:
    """Bring an older table to today's shape, keeping its rows, ids and order."""
    await cur.execute(_SEQ_IS_AUTO)
    (seq_is_auto,) = await cur.fetchone()
    if seq_is_auto:
        log.warning("table info: seq moves from AUTO_INCREMENT to the info_seq sequence, id "
                    "becomes BIGINT AUTO_INCREMENT (one ALTER TABLE)")
        await cur.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM info")
        (next_seq,) = await cur.fetchone()
        await cur.execute(f"ALTER SEQUENCE info_seq RESTART WITH {int(next_seq)}")
        await cur.execute(_SEQ_TO_SEQUENCE)
        return
    await cur.execute(_ID_TYPE)
    row = await cur.fetchone()
    if row is not None and str(row[0]).lower() != "bigint":
        log.warning("table info: widening id from %s to BIGINT (one ALTER TABLE)", row[0])
        await cur.execute(_WIDEN_IDS)


async def _select_one(raw: Any) -> None:
    async with raw.cursor() as cur:
        await cur.execute("SELECT 1")
        await cur.fetchall()


def _info_row(row: tuple[Any, ...]) -> InfoRow:
    money = row[2] if isinstance(row[2], Decimal) else Decimal(str(row[2]))
    return InfoRow(int(row[0]), str(row[1]), money)


def _store_error(exc: BaseException) -> StoreError:
    """A read's failure: the connection is gone, or the server refused the statement."""
    if is_disconnect(exc):
        return StoreUnavailable("lost the database connection", detail=str(exc))
    return _refused(exc, "the database refused the statement")


def _refused(exc: BaseException, what: str, *, retry_after: int = 3) -> StoreRefused:
    """A statement the server refused, answered with its number; its text (which can name
    files and hosts) is the detail."""
    return StoreRefused(f"{what}; nothing was stored (error {error_code(exc)})",
                        retry_after=retry_after, detail=str(exc))


def _insert_refused(exc: BaseException, id: int | None, query_timeout: float) -> StoreError:
    """What an insert the server refused means to the client; nothing was stored."""
    code = error_code(exc)
    if code == ER.DUP_ENTRY and id is not None:
        return DuplicateId(id)
    if code in _RETRYABLE:
        return _refused(exc, "database busy", retry_after=1)
    if code in _TIME_LIMITS:
        return _refused(exc, f"the database did not store the row within {query_timeout:g}s")
    if code in _IDS_EXHAUSTED and id is None:
        return _refused(exc, "the database has no id left to assign")
    if code in _VALUE_REFUSED:
        match = _COLUMN.search(str(exc))
        column = next((name for name in match.groups() if name), "") if match else ""
        # A table constraint of the operator's names no field: the row as a whole.
        return RowRefused(column if column in _FIELDS else "body",
                          "the database refused this value")
    return _refused(exc, "the database refused the row")
