"""Small helpers shared by several test modules (one home, rather than imports between tests)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from quart_app.cache import Cache, CacheSettings
from quart_app.cache.backends import BoundedMemoryBackend, PrefixedRedisBackend
from quart_app.db import InfoRow, InfoStore
from quart_app.db.store import MAX_PAGE_SIZE


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_sqlite_config(tmp_path: Path) -> dict[str, Any]:
    """An app on the memory cache and a fresh SQLite file: for tests that need no server."""
    return {"CACHE_TYPE": "SimpleCache", "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}:",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'test.sqlite3'}"}


def reset_mysql_table(url: str) -> None:
    """Create the URL's database if missing and drop its `info` table (the store makes it)."""
    import pymysql  # only tests that reached MariaDB get here

    parts = urlsplit(url)
    database = parts.path.lstrip("/")
    connection = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                                 user=parts.username or "root", password=parts.password or "")
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            cursor.execute(f"DROP TABLE IF EXISTS `{database}`.info")
            cursor.execute(f"DROP SEQUENCE IF EXISTS `{database}`.info_seq")
        connection.commit()
    finally:
        connection.close()


def messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    """The messages `logger` (by its exact name) logged during the test."""
    return [record.getMessage() for record in caplog.records if record.name == logger]


async def seconds_left(cache: Cache, key: str) -> float | None:
    """How long `key` (as given to `cache.set`) has left in the current app's backend."""
    client = cache.client
    full_key = client.settings.key_prefix + key
    backend: Any = client.backend
    if isinstance(backend, PrefixedRedisBackend):
        milliseconds = await backend.client.pttl(full_key)
        return None if milliseconds < 0 else milliseconds / 1000
    assert isinstance(backend, BoundedMemoryBackend)
    _, expires_at = backend._entries[full_key]
    return None if expires_at == float("inf") else expires_at - time.monotonic()


async def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110  (the state lives in another component)
            await asyncio.sleep(0.01)


def settings_from(cache_config: dict[str, Any], **changes: Any) -> CacheSettings:
    """The `CacheSettings` of a `cache_config` fixture's backend, with `changes`."""
    fields = {
        "cache_type": cache_config["CACHE_TYPE"],
        "key_prefix": cache_config["CACHE_KEY_PREFIX"],
    }
    if "CACHE_REDIS_URL" in cache_config:
        fields["redis_url"] = cache_config["CACHE_REDIS_URL"]
    return CacheSettings(**{**fields, **changes})


async def query(conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement on an aiomysql connection and return its rows."""
    async with conn.cursor() as cur:
        await cur.execute(sql, args)
        return list(await cur.fetchall())


async def server_has(admin: Any, thread_id: int) -> bool:
    """Whether MariaDB still has connection `thread_id` (asked on the `admin` connection)."""
    rows = await query(admin, "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = %s",
                       (thread_id,))
    return bool(rows)


async def wait_until_gone(admin: Any, thread_id: int, seconds: float = 2) -> None:
    """Wait until MariaDB has closed connection `thread_id`; fail after `seconds`."""
    for _ in range(int(seconds / 0.02)):
        if not await server_has(admin, thread_id):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"connection {thread_id} is still open on the server")


async def all_rows(store: InfoStore) -> list[InfoRow]:
    """Every row of `store`, newest first (one page: the tests keep fewer rows than that)."""
    rows, cursor = await store.list_page(MAX_PAGE_SIZE, None)
    assert cursor is None
    return rows
