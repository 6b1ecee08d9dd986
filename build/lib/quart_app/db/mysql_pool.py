"""A connection pool over `aiomysql` that keeps PooledDB's promises.

aiomysql's own Pool waits forever for a connection, measures `pool_recycle` as idle time,
never pings, and closes a connection released inside a transaction (losing the uncommitted
work without a word). This pool is small on purpose:

- at most `maxconnections` connections exist (idle + in use + being opened); checkouts
  beyond that wait in FIFO order, up to `acquire_timeout`, or fail at once when `blocking`
  is false; both failures are `PoolExhausted`;
- a connection is handed out only after the cheap checks (still open, nothing from the
  server waiting on its socket, younger than `recycle`, fewer than `maxusage` checkouts)
  and, with `ping`, a round trip;
- it goes back to the idle list only when it is certainly clean: the caller finished
  without an exception, or with an error the server reported (the protocol is still in
  step), and the server says no transaction is open. Anything else, cancellation included,
  closes it; the server then rolls back whatever the connection had not committed.

Every connection runs with autocommit on; writes that need more than one statement open
their own transaction (see `MySQLStore`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import struct
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomysql
import pymysql
from pymysql.constants import COMMAND, ER

from .errors import PoolExhausted, StoreError, StoreUnavailable
from .pool_settings import PoolSettings
from .reachability import Reachability
from .urls import MySQLAddress

log = logging.getLogger("quart_app.db")

# Errors that arrive in a proper error packet yet mean the session is over.
_SESSION_ENDING_ERRORS = frozenset({
    ER.SERVER_SHUTDOWN,  # 1053
    1152,  # ER_ABORTING_CONNECTION
    1927,  # ER_CONNECTION_KILLED (MariaDB)
    4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
})

_COM_QUIT = struct.pack("<i", 1) + bytes([COMMAND.COM_QUIT])


def error_code(exc: BaseException) -> int:
    """The MySQL error number of a PyMySQL exception (0 when it has none)."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def is_server_error(exc: BaseException) -> bool:
    """True when the server refused a statement and the connection is still usable.

    The server's refusals arrive in an error packet with the server's number: handler
    errors below 1000 (167, out of range for AUTO_INCREMENT), 1000..1999, and 3000 up
    (MySQL 5.7+ and MariaDB 10.x numbers, 3024, 4025). 2000..2999 are the client library's
    own (CR_*: 2006 gone away, 2013 lost, 2055), and code 0 is a protocol error: the
    connection is in an unknown state.
    """
    if not isinstance(exc, pymysql.err.MySQLError):
        return False
    code = error_code(exc)
    return code > 0 and not 2000 <= code < 3000 and code not in _SESSION_ENDING_ERRORS


def is_disconnect(exc: BaseException) -> bool:
    """True when `exc` means the connection, or the server, is gone."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    return isinstance(
        exc, pymysql.err.OperationalError | pymysql.err.InternalError
    ) and not is_server_error(exc)


def _server_spoke(raw: Any) -> bool:
    """True when an idle connection's socket holds an EOF, an error or bytes nobody asked for.

    Asks the kernel, not the event loop: a hang-up that arrived since the loop last polled
    is not yet in the reader, and an insert sent on such a connection cannot be retried.
    """
    writer = getattr(raw, "_writer", None)
    sock = None if writer is None else writer.get_extra_info("socket")
    if sock is None:
        return True
    # poll, not select: descriptors above 1023 are common with 1,000 clients connected.
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


@dataclass(eq=False, slots=True)
class PooledConnection:
    """One aiomysql connection and what the pool knows about it."""

    raw: Any
    created: float
    uses: int = 0
    #: True when this checkout reused an idle connection (which may have died meanwhile).
    reused: bool = False
    thread_id: int = field(default=0)


class MySQLPool:
    """Connections to one MySQL database, with PooledDB's settings; see the module doc."""

    def __init__(
        self, address: MySQLAddress, settings: PoolSettings, *, create_database: bool = True
    ) -> None:
        self._address = address
        self._settings = settings
        self._create_database = create_database
        self._idle: deque[PooledConnection] = deque()
        self._in_use: set[PooledConnection] = set()
        self._opening = 0
        # Checkout slots: one per connection in use or being opened.
        self._slots_used = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._reachability = Reachability(self._address.display_url, retry_after=3)
        self._timeouts = 0
        self._rejected = 0
        self._created = 0
        self._discarded = 0

    @property
    def display_url(self) -> str:
        return self._address.display_url

    @property
    def settings(self) -> PoolSettings:
        return self._settings

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[PooledConnection]:
        """Check out a connection for the block; it is returned or closed on the way out."""
        conn = await self.acquire()
        try:
            yield conn
        except BaseException as exc:
            self.release(conn, exc)
            raise
        self.release(conn, None)

    async def acquire(self) -> PooledConnection:
        """Check out a connection; prefer `connection()`, which always gives it back.

        Raises `PoolExhausted` when none is free in time and `StoreUnavailable` when a new
        one cannot be opened.
        """
        if self._closed:
            raise StoreUnavailable("the database store is closed")
        await self._take_slot()
        try:
            return await self._checkout()
        except BaseException:
            self._give_slot()
            raise

    def release(self, conn: PooledConnection, exc: BaseException | None = None) -> None:
        """Give back a connection checked out with `acquire`, with the exception (if any)
        that ended its use; the pool decides whether it can be reused."""
        if conn not in self._in_use:
            raise RuntimeError("connection released twice or not from this pool")
        self._in_use.discard(conn)
        try:
            if self._reusable(conn, exc):
                self._idle.append(conn)
            else:
                self._discard(conn)
            if exc is not None and is_disconnect(exc):
                # One connection lost mid-query usually means the server restarted: the
                # idle ones are dead too, and finding out one request at a time costs more.
                self.discard_idle()
        finally:
            self._give_slot()

    async def fill(self, count: int) -> None:
        """Open connections until `count` are idle (PooledDB's `mincached`)."""
        while len(self._idle) < count and self._try_take_slot():
            try:
                conn = await self._open()
            except BaseException:
                self._give_slot()
                raise
            if self._closed:
                self._discard(conn)
            else:
                self._idle.append(conn)
            self._give_slot()

    def discard_idle(self) -> None:
        """Close every idle connection (after the server went away, for instance)."""
        while self._idle:
            self._discard(self._idle.pop())

    def reopen(self) -> None:
        """Accept checkouts again after `close()`."""
        self._closed = False

    async def close(self) -> None:
        """Close idle connections now, busy ones when they come back; fail every waiter."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(StoreUnavailable("the database store is closing"))
        self.discard_idle()
        # Let the transports flush the goodbye and close before the loop may stop.
        await asyncio.sleep(0)

    def stats(self) -> dict[str, int | float | str]:
        """Counters for /stats; `size` counts connections being opened too."""
        s = self._settings
        return {
            "size": len(self._idle) + len(self._in_use) + self._opening,
            "in_use": len(self._in_use),
            "idle": len(self._idle),
            "opening": self._opening,
            "waiting": len(self._waiters),
            "timeouts": self._timeouts,
            "rejected": self._rejected,
            "created": self._created,
            "discarded": self._discarded,
            "mincached": s.mincached,
            "maxcached": s.maxcached,
            "maxconnections": s.maxconnections,
        }

    # Checkout slots -------------------------------------------------------------------

    def _try_take_slot(self) -> bool:
        limit = self._settings.maxconnections
        if (not limit or self._slots_used < limit) and not self._waiters:
            self._slots_used += 1
            return True
        return False

    async def _take_slot(self) -> None:
        if self._try_take_slot():
            return
        limit = self._settings.maxconnections
        if not self._settings.blocking:
            self._rejected += 1
            raise PoolExhausted(f"all {limit} database connections are busy")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._settings.acquire_timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # A slot was handed over just as this task gave up: pass it on.
                self._give_slot()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                self._timeouts += 1
                raise PoolExhausted(
                    f"all {limit} database connections stayed busy for "
                    f"{self._settings.acquire_timeout:g}s"
                ) from None
            raise

    def _give_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the oldest waiter
                return
        self._slots_used -= 1

    # Connections ----------------------------------------------------------------------

    async def _checkout(self) -> PooledConnection:
        while self._idle:
            conn = self._idle.pop()
            if not self._usable(conn):
                self._discard(conn)
                continue
            self._in_use.add(conn)
            if self._settings.ping:
                try:
                    async with asyncio.timeout(self._settings.connect_timeout):
                        await conn.raw.ping(reconnect=False)
                except Exception:
                    self._in_use.discard(conn)
                    self._discard(conn)
                    self.discard_idle()
                    continue
                except BaseException:
                    self._in_use.discard(conn)
                    self._discard(conn)
                    raise
            conn.uses += 1
            conn.reused = True
            return conn
        conn = await self._open()
        conn.uses = 1
        self._in_use.add(conn)
        return conn

    def _usable(self, conn: PooledConnection) -> bool:
        raw = conn.raw
        if raw.closed:
            return False
        # The server closed its end (KILL, restart, wait_timeout): no round trip needed.
        reader = getattr(raw, "_reader", None)
        if reader is None or reader.at_eof() or getattr(reader, "eof_received", False):
            return False
        return not _server_spoke(raw) and not self._worn_out(conn)

    def _worn_out(self, conn: PooledConnection) -> bool:
        s = self._settings
        if s.maxusage is not None and conn.uses >= s.maxusage:
            return True
        loop = asyncio.get_running_loop()
        return bool(s.recycle) and loop.time() - conn.created >= s.recycle

    def _reusable(self, conn: PooledConnection, exc: BaseException | None) -> bool:
        if self._closed or conn.raw.closed or self._worn_out(conn):
            return False
        if exc is not None and not is_server_error(exc):
            return False
        if conn.raw.get_transaction_status():
            return False
        cap = self._settings.maxcached
        return not cap or len(self._idle) < cap or bool(self._waiters)

    def _discard(self, conn: PooledConnection) -> None:
        self._discarded += 1
        raw = conn.raw
        writer = getattr(raw, "_writer", None)
        if writer is not None and not writer.is_closing():
            # The same goodbye as aiomysql's ensure_closed(), without awaiting the drain:
            # the transport flushes it before closing, and the server logs no aborted
            # connection. Harmless on a connection that died mid-query.
            with contextlib.suppress(Exception):
                writer.write(_COM_QUIT)
        raw.close()

    async def _open(self) -> PooledConnection:
        self._opening += 1
        try:
            raw = await self._connect()
        finally:
            self._opening -= 1
        self._created += 1
        loop = asyncio.get_running_loop()
        return PooledConnection(raw=raw, created=loop.time(), thread_id=raw.thread_id())

    async def _connect(self) -> Any:
        timeout = self._settings.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                raw = await self._handshake()
        except TimeoutError:
            raise self._reachability.down(f"no answer within {timeout:g}s") from None
        except pymysql.err.MySQLError as exc:
            cause = f" ({exc.__cause__})" if exc.__cause__ else ""
            message = exc.args[1] if len(exc.args) > 1 else str(exc)
            raise self._reachability.down(f"{message}{cause}") from exc
        self._reachability.up()
        return raw

    async def _handshake(self) -> Any:
        database = self._address.database
        try:
            raw = await self._login(database)
        except pymysql.err.OperationalError as exc:
            if error_code(exc) != ER.BAD_DB_ERROR or not self._create_database:
                raise
            raw = await self._login(None)
            try:
                async with raw.cursor() as cur:
                    # A checked identifier (see urls.py): names cannot be parameters.
                    await cur.execute(
                        f"CREATE DATABASE IF NOT EXISTS `{database}` "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                    )
                await raw.select_db(database)
            except BaseException:
                raw.close()
                raise
            log.info("created database %s", database)
        try:
            for statement in self._settings.setsession:
                try:
                    async with raw.cursor() as cur:
                        await cur.execute(statement)
                except pymysql.err.MySQLError as exc:
                    if not is_server_error(exc):
                        raise
                    raise StoreError(
                        f"DATABASE_POOL.setsession statement {statement!r} failed: {exc}"
                    ) from exc
            # A setsession statement must not switch our autocommit discipline off.
            await raw.autocommit(True)
            if raw.get_transaction_status():
                await raw.rollback()
        except BaseException:
            raw.close()
            raise
        return raw

    async def _login(self, database: str | None) -> Any:
        address = self._address
        raw = aiomysql.Connection(
            host=address.host,
            port=address.port,
            user=address.user,
            password=address.password,
            db=database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=self._settings.connect_timeout,
        )
        try:
            # What aiomysql.connect() does, minus its wrapper, so that a cancelled or timed
            # out handshake closes the socket here instead of in a ResourceWarning later.
            await raw._connect()
        except BaseException:
            raw.close()
            raise
        return raw
