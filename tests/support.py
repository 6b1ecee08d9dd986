"""Small helpers shared by several test modules (one home, rather than imports between tests)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes, urlsplit

import pytest
import redis
from quart import Quart

from quart_app import create_app
from quart_app.cache import Cache, CacheClient, CacheSettings
from quart_app.cache.backends import BoundedMemoryBackend, PrefixedRedisBackend
from quart_app.cache.cluster import ClusterRedisBackend
from quart_app.cache.memcached import GenerationMemcachedBackend, generation_key, unpack
from quart_app.cache.settings import memcached_address
from quart_app.config import as_cluster_nodes
from quart_app.db import InfoRow, InfoStore
from quart_app.db.store import MAX_PAGE_SIZE
from quart_app.extensions import cache

from .services import REDIS_URL, require_service


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def backend_config(request: pytest.FixtureRequest, backend: str,
                   key_prefix: str) -> Iterator[dict[str, Any]]:
    """Cache settings for one backend ("memory", "redis", "cluster" or "memcached"), each test
    under its own prefix; the Redis run deletes its keys afterwards (memcached and the cluster
    are throwaway servers)."""
    if backend == "memory":
        yield {"CACHE_TYPE": "SimpleCache", "CACHE_KEY_PREFIX": key_prefix}
        return
    if backend == "cluster":
        cluster = request.getfixturevalue("shared_cluster")
        yield cluster.app_config(key_prefix)
        return
    if backend == "memcached":
        server = request.getfixturevalue("memcached_server")
        yield {"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": [server.server],
               "CACHE_KEY_PREFIX": key_prefix}
        return
    url = require_service("Redis", REDIS_URL)
    yield {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url, "CACHE_KEY_PREFIX": key_prefix}
    import redis as sync_redis

    client = sync_redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=key_prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


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
    if backend.SHARED:  # memcached: values record their expiry
        [(_, seconds)] = await backend.multi_get_with_ttl([full_key])
        return seconds  # type: ignore[no-any-return]
    assert isinstance(backend, BoundedMemoryBackend)
    _, expires_at = backend._entries[full_key]
    return None if expires_at == float("inf") else expires_at - time.monotonic()


async def stored_texts(client: CacheClient) -> list[str]:
    """Every current value under the client's prefix, as the backend stores it."""
    backend: Any = client.backend
    if isinstance(backend, BoundedMemoryBackend):
        return [text for text, _ in backend._entries.values()]
    if isinstance(backend, GenerationMemcachedBackend):
        # No SCAN: memcached's LRU crawler lists the keys (of every prefix on the server);
        # only values of this prefix's generation are its own.
        reader, writer = await asyncio.open_connection(*client.settings.memcached_server,
                                                       limit=64 * 1024 * 1024)
        writer.write(b"lru_crawler metadump all\r\n")
        dump = await reader.readuntil(b"END\r\n")
        writer.close()
        token = generation_key(client.settings.key_prefix)
        keys = {unquote_to_bytes(part[4:].decode()) for line in dump.splitlines()
                for part in line.split() if part.startswith(b"key=")} - {token}
        generation, *values = await backend.client.multi_get(token, *keys)
        found = [unpack(value, generation) for value in values]
        return [current[0] for current in found if current is not None]
    keys = [key async for key in backend.client.scan_iter(match=client.settings.key_prefix + "*")]
    if isinstance(backend, ClusterRedisBackend):
        values = await backend.client.mget_nonatomic(keys)
    else:
        values = await backend.client.mget(*keys)
    return [value.decode() for value in values if value is not None]


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
    if "CACHE_REDIS_CLUSTER" in cache_config:
        fields["cluster_nodes"] = tuple(as_cluster_nodes("CACHE_REDIS_CLUSTER",
                                                         cache_config["CACHE_REDIS_CLUSTER"]))
    if "CACHE_MEMCACHED_SERVERS" in cache_config:
        fields["memcached_server"] = memcached_address(cache_config["CACHE_MEMCACHED_SERVERS"])
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


#: Clients the fault runs' load runs at once; client n inserts ids n, n + LOAD_CLIENTS, ...
LOAD_CLIENTS = 4


@dataclass
class LoadCounts:
    """What `read_your_writes_load` saw (the fault runs add their own timings)."""

    acknowledged: int = 0
    #: Answered 503 with `stored: true`: stored, its invalidation not confirmed.
    stored_unconfirmed: int = 0
    refused: int = 0
    lost: int = 0
    stale: int = 0
    server_errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass
class FailoverCounts(LoadCounts):
    """A failover run's counts and timings (seconds from the kill)."""

    failover: float = 0.0
    recovery: float = 0.0
    #: Inserts acknowledged once the list was served from the new master's cache.
    after_recovery: int = 0


def listed_ids(page: Any) -> list[int]:
    """The ids of a page of `/api/info`, in its order."""
    return [item["id"] for item in page["items"]]


#: Rows on the first page of `/api/info`.
FIRST_PAGE = 20


def left_out(ids: list[int], info_id: int) -> bool:
    """Whether the first page of the list (newest first) is stale about the stored row
    `info_id`: it is not there, though the page is not full or holds an older row. Rows
    stored since, acknowledged or not (a 503 with `stored: true`), may push it off a full
    page."""
    return info_id not in ids and (len(ids) < FIRST_PAGE or min(ids) < info_id)


async def read_your_writes_load(apps: tuple[Quart, Quart], counts: LoadCounts,
                                stop: asyncio.Event, acknowledged: list[int],
                                first_id: int) -> None:
    """Insert on one worker, then read the row and the list on the other (read-your-writes),
    until `stop`: one of the LOAD_CLIENTS clients of a fault run."""
    info_id = first_id - LOAD_CLIENTS
    while not stop.is_set():
        info_id += LOAD_CLIENTS
        writer, reader = (app.test_client() for app in (apps[info_id % 2], apps[1 - info_id % 2]))
        created = await writer.post("/api/info", json={"id": info_id, "name": "f", "money": "1"})
        counts.statuses[created.status_code] = counts.statuses.get(created.status_code, 0) + 1
        if created.status_code == 201:
            counts.acknowledged += 1
            acknowledged.append(info_id)
        elif created.status_code == 503 and (await created.get_json()).get("stored") is True:
            counts.stored_unconfirmed += 1
            continue  # not acknowledged as fresh: the client was told reads may lag
        else:
            counts.refused += 1
            counts.server_errors += created.status_code >= 500
            continue
        row = await reader.get(f"/api/info/{info_id}")
        page = await reader.get("/api/info")
        counts.server_errors += row.status_code >= 500
        counts.server_errors += page.status_code >= 500
        if row.status_code != 200 or left_out(listed_ids(await page.get_json()), info_id):
            counts.stale += 1


async def until_cached_again(app: Quart, limit: float = 15.0) -> float:
    """Seconds from now until the worker serves the list from its cache again."""
    started = time.monotonic()
    client = app.test_client()
    async with asyncio.timeout(limit):
        while True:
            status = (await client.get("/api/info")).headers["Cache-Status"]
            if status.startswith("quart_app; hit"):
                return time.monotonic() - started
            await asyncio.sleep(0.02)


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of process `pid` is stopped (state T in /proc, Linux)."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(OSError):
            # The state follows the command name, which is in parentheses.
            if stat.read_text().rpartition(")")[2].split()[0] not in ("T", "t"):
                return False
    return True


class ThrowawayServer:
    """A server process a test owns on a free port (redis-server, memcached), which it may
    stall (SIGSTOP: connections accepted, nothing answered), resume and kill."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self, command: list[str], probe: bytes, answer: bytes) -> None:
        """Start `command` and wait until it answers `probe` with `answer` (at most 10 s)."""
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                    sock.sendall(probe)
                    if sock.recv(64).startswith(answer):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"throwaway {command[0]} did not start on port {self.port}")

    def stall(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        # The signal stops each thread only once the kernel gets to it: a thread already
        # running (memcached's workers, on a loaded machine) could still answer the next
        # request. Return once every thread is stopped.
        deadline = time.monotonic() + 5
        while not _all_threads_stopped(self.process.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.process.args!r} did not stop")
            time.sleep(0.001)

    def unstall(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a stalled one must still die
            self.process.kill()
            self.process.wait(10)
            self.process = None


def wait_for(what: str, condition: Callable[[], object], timeout: float) -> None:
    """Until `condition()` is true, while a throwaway server starts or fails over (errors
    while it is not up yet count as false); RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, redis.RedisError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} within {timeout:.0f} s")


class RedisProcesses:
    """The redis-server processes of a throwaway deployment (a cluster, a sentinel set), by
    port: a client for one, killing one, stopping them all."""

    def __init__(self) -> None:
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2)

    def kill(self, port: int) -> None:
        process = self.processes.pop(port, None)
        if process is not None:
            process.kill()
            process.wait(10)

    def stop(self) -> None:
        for port in list(self.processes):
            self.kill(port)


class RedisDeployment(Protocol):
    """A throwaway Redis deployment an app can be pointed at (ThrowawayCluster,
    ThrowawaySentinels): what the shared failover and view helpers need of it."""

    def app_config(self, key_prefix: str) -> dict[str, Any]: ...

    def client(self, port: int) -> redis.Redis: ...


def failover_worker(deployment: RedisDeployment, tmp_path: Path, prefix: str,
                    **extra: Any) -> Quart:
    """An app of a failover run: short Redis timeouts and retries, so that it notices the
    dead master and follows the new one within the run."""
    return create_app({
        **deployment.app_config(prefix), "CACHE_REDIS_TIMEOUT": 0.3,
        "CACHE_RETRY_INTERVAL": 0.5, "CACHE_LOCAL_ACK_TIMEOUT": 0.3,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **extra,
    })


def keys_on(deployment: RedisDeployment, port: int, prefix: str) -> dict[bytes, bytes]:
    """The keys under `prefix` on the server on `port`, with their values."""
    server = deployment.client(port)
    try:
        return {key: server.get(key) for key in server.scan_iter(match=prefix + "*")}
    finally:
        server.close()


def restore(deployment: RedisDeployment, port: int, prefix: str,
            keys: dict[bytes, bytes]) -> None:
    """Put the keys under `prefix` on the server on `port` back as they were (`keys_on`):
    what a replica that missed the writes since holds (replication is asynchronous)."""
    server = deployment.client(port)
    try:
        for key in list(server.scan_iter(match=prefix + "*")):
            server.delete(key)  # one by one: on a cluster they may be of several slots
        for key, value in keys.items():
            server.set(key, value)
    finally:
        server.close()


async def wait_for_the_bus(apps: tuple[Quart, ...], limit: float = 15.0) -> None:
    """Until every app's signal bus is connected (subscribed and publishing)."""
    buses = [app.extensions["signal_bus"] for app in apps]
    async with asyncio.timeout(limit):
        while not all(bus.connected for bus in buses):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def count_the_lost(app: Quart, counts: FailoverCounts, acknowledged: list[int]) -> None:
    """Count the acknowledged inserts `app` cannot read after a failover run."""
    reader = app.test_client()
    for info_id in acknowledged:
        counts.lost += (await reader.get(f"/api/info/{info_id}")).status_code != 200


def assert_the_failover_lost_nothing(counts: FailoverCounts) -> None:
    """Inserts were acknowledged, before the failover and after the recovery, and none was
    lost, read stale, refused or answered with a server error."""
    assert counts.acknowledged > 0
    assert counts.after_recovery > 0
    assert counts.lost == 0
    assert counts.stale == 0
    assert counts.server_errors == 0
    assert counts.refused == 0


async def an_insert_is_read_at_once_on_the_other(apps: tuple[Quart, Quart]) -> None:
    """The second app caches a missing row; the first inserts it (stored, if maybe with its
    invalidation unconfirmed: 503); the second reads it at once."""
    reader = apps[1].test_client()
    assert (await reader.get("/api/info/9")).status_code == 404
    created = await apps[0].test_client().post(
        "/api/info", json={"id": 9, "name": "n", "money": "1"})
    assert created.status_code in (201, 503)
    assert (await reader.get("/api/info/9")).status_code == 200


async def an_insert_evicts_the_local_copy_on_the_other(first: Quart, second: Quart) -> None:
    """With the local tier and the bus connected: the second app caches a missing row (in its
    own memory too); the first inserts it, and the second reads it at once, the eviction
    announced and confirmed."""
    buses = [app.extensions["signal_bus"] for app in (first, second)]
    reader = second.test_client()
    await reader.get("/api/info/8")  # a 404, cached and copied into the second's tier
    again = await reader.get("/api/info/8")
    assert again.status_code == 404
    assert again.headers["Cache-Status"].startswith("quart_app; hit")
    assert cache.client_for(second).local is not None
    created = await first.test_client().post("/api/info",
                                             json={"id": 8, "name": "n", "money": "2"})
    assert created.status_code == 201
    assert (await reader.get("/api/info/8")).status_code == 200
    assert buses[0].evictions_announced >= 1
    assert buses[0].evictions_unconfirmed == 0


async def views_are_cached_and_reads_follow_writes(app: Quart) -> None:
    """The list and the row views are cached, and an insert, an update and a delete are read
    at once after: what every Redis deployment's suite checks on its own."""
    async with app.test_app():
        client = app.test_client()
        first = await client.get("/api/info")
        assert first.headers["Cache-Status"] == "quart_app; fwd=miss; stored"
        again = await client.get("/api/info")
        assert again.headers["Cache-Status"].startswith("quart_app; hit")
        assert (await client.get("/api/info/7")).status_code == 404
        created = await client.post("/api/info", json={"id": 7, "name": "redis", "money": "1"})
        assert created.status_code == 201
        listed = await (await client.get("/api/info")).get_json()
        assert listed_ids(listed) == [7]
        assert (await client.get("/api/info/7")).status_code == 200
        updated = await client.put("/api/info/7", json={"name": "moved", "money": "2"})
        assert updated.status_code == 200
        assert (await (await client.get("/api/info/7")).get_json())["name"] == "moved"
        assert (await client.delete("/api/info/7")).status_code in (200, 204)
        assert (await client.get("/api/info/7")).status_code == 404
        assert (await client.get("/readyz")).status_code == 200
