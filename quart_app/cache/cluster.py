"""Redis Cluster: the cache (`RedisClusterCache`) on every master of a cluster, followed
across failovers and slot moves without a restart.

redis-py's `RedisCluster` routes each single-key command to the master of the key's slot,
and re-learns the slot map after a MOVED reply or a lost connection. What is added here:
- commands that name several keys never cross slots: reads and writes of many keys are
  pipelined per node (one round trip to each node involved), deletions go slot by slot, and
  `clear()` SCANs every master. A view's entry and its generation tokens share a hash tag
  (see `cache.keys`), so they sit in one slot and are read in one round trip;
- connections are bounded as on one server: at most CACHE_REDIS_POOL_SIZE commands at once,
  a caller waiting up to CACHE_REDIS_TIMEOUT for its turn (redis-py's cluster pool raises
  "Too many connections" instead, which would read as an outage);
- it says when a slot's master was replaced by a node that served no slots before (a
  promoted replica: `on_master_change`), before any command reaches the new one. Replication
  is asynchronous, so a deletion the old master acknowledged may never have reached the
  replica promoted in its place: the cache client then forgets whatever may be stale before
  it reads again (`CacheClient`), as with Sentinel. A slot moved to another master (a
  reshard) loses nothing, since MIGRATE moves each key synchronously, so it is not reported:
  reporting it cleared the whole cache once for every slot moved;
- an MGET of keys of a slot that is half moved gets TRYAGAIN from Redis until the move ends
  (some of its keys are on each master): it is read again key by key (each key is then
  answered, or redirected by ASK), rather than taken for an outage that would make every
  read a miss for CACHE_RETRY_INTERVAL. (GET and PTTL in a pipeline name one key each.)
  A key already moved is reached by an ASK redirection, which redis-py 8.1 gets wrong when
  several connections are open (`AskingOnOneConnection`) or when it leads to a master that
  serves no slots yet (`_Cluster`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import redis as sync_redis
import redis.asyncio as redis
from aiocache.serializers import NullSerializer
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.cluster import PRIMARY
from redis.event import (
    AsyncAfterSlotsCacheRefreshEvent,
    AsyncEventListenerInterface,
    EventDispatcher,
    EventListenerInterface,
)
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

from ..errors import ConfigError
from .backends import (
    NO_CALL_TIMEOUT,
    REDIS_OUTAGE_ERRORS,
    PrefixedRedisBackend,
    _glob_escape,
)

logger = logging.getLogger("quart_app.cache")

Address = tuple[str, int]

#: What a cluster says while a master is down or its slots move: unreachable, not a bad
#: command (a cluster that cannot be reached at all raises RedisClusterException).
CLUSTER_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    *REDIS_OUTAGE_ERRORS, ClusterDownError, ClusterError, SlotNotCoveredError, TryAgainError,
    RedisClusterException,
)

#: One retry after a lost connection, on the slot map learnt again (a promoted replica).
CLUSTER_RETRY = Retry(NoBackoff(), 1)

#: The storage primitives `CacheClient` calls, each bounded by the backend's semaphore.
_PRIMITIVES = ("_get", "_multi_get", "_set", "_multi_set", "_add", "_exists", "_increment",
               "_expire", "_delete", "_delete_if_equal", "_delete_many", "_clear",
               "multi_get_with_ttl", "ping")


def _half_moved(error: BaseException) -> bool:
    """Whether a command of several keys failed because their slot is half moved: Redis
    answered TRYAGAIN until redis-py gave up ("TTL exhausted"), not a cluster that is down."""
    return isinstance(error, TryAgainError) or (
        type(error) is ClusterError and "TTL exhausted" in str(error))


def refuse_servers_without_cluster_mode(
    nodes: Sequence[Address], *, password: str | None, timeout: float
) -> None:
    """ConfigError if CACHE_REDIS_CLUSTER names a Redis without cluster mode: a mistake in the
    settings, which the client would otherwise report as an outage forever ("Redis Cluster
    cannot be connected"). Checked once at start-up, within `timeout` in all: nodes that do
    not answer are passed over (one may be down), and the first that answers decides."""
    deadline = time.monotonic() + timeout
    for host, port in nodes:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        node = sync_redis.Redis(host=host, port=port, password=password,
                                socket_connect_timeout=left, socket_timeout=left)
        try:
            enabled = node.info("cluster").get("cluster_enabled")
        except (sync_redis.RedisError, OSError):
            continue  # down, or it cannot tell us (a password): the outage log will say
        finally:
            node.close()
        if str(enabled) != "1":
            raise ConfigError("CACHE_REDIS_CLUSTER", ",".join(map(_address, nodes)),
                              f"nodes of a Redis Cluster: {_address((host, port))} is a Redis "
                              "without cluster mode (cluster_enabled:0); for one server use "
                              "CACHE_TYPE = 'RedisCache' and CACHE_REDIS_URL")
        return


def _address(node: Address) -> str:
    host, port = node
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class SlotMapWatch(AsyncEventListenerInterface):
    """Tells its listeners when a slot's master is a node that was no master before (a
    failover): registered with redis-py's event dispatcher, which calls it each time the slot
    map was learnt again (after a MOVED reply or a reconnection), before the command that
    learnt it is sent on."""

    def __init__(self) -> None:
        self.client: RedisCluster | None = None
        self._masters: dict[int, str] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_master_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    async def listen(self, event: object) -> None:
        if self.client is None:
            return
        slots = self.client.nodes_manager.slots_cache
        masters = {slot: nodes[0].name for slot, nodes in slots.items() if nodes}
        serving = set(self._masters.values())
        changed = [slot for slot, name in masters.items()
                   if self._masters.get(slot, name) != name]
        # A master that served other slots before got this one by a reshard; any other node
        # (a replica, or one this client never saw) may have missed writes: a failover.
        failed_over = [slot for slot in changed if masters[slot] not in serving]
        self._masters = masters
        if len(changed) > len(failed_over):
            logger.info("redis cluster: %d slots moved to another master (a reshard)",
                        len(changed) - len(failed_over))
        if failed_over:
            logger.warning("redis cluster: %d slots have another master now (first: slot %d "
                           "on %s)", len(failed_over), failed_over[0],
                           masters[failed_over[0]])
            for listener in self._listeners:
                listener()


class _LastFreedFirst(deque[Any]):
    """A node's free connections, the last one freed handed out first (redis-py frees to the
    back and takes from the front): see `AskingOnOneConnection`."""

    def append(self, connection: Any) -> None:
        self.appendleft(connection)


class AskingOnOneConnection(AsyncEventListenerInterface):
    """Makes ASK redirections work while several connections to a node are free.

    A key already moved to the slot's new master is answered there only on a connection that
    sent ASKING first. redis-py 8.1 sends ASKING and then the command as two commands, each on
    the node's first free connection, and puts a freed connection at the back: with two or
    more free, the command goes on another connection, is answered MOVED back to the old
    master, which answers ASK again, until redis-py gives up ("TTL exhausted"), so every key
    moved before the end of a reshard was unreadable and undeletable. Taking the last freed
    connection first puts the command on ASKING's connection: nothing runs in between (no
    await suspends from one to the other). Applied to every node each time the slot map is
    learnt (new nodes may have appeared)."""

    def __init__(self) -> None:
        self.client: RedisCluster | None = None

    async def listen(self, event: object) -> None:
        if self.client is None:
            return
        for node in self.client.nodes_manager.nodes_cache.values():
            if not isinstance(node._free, _LastFreedFirst):
                node._free = _LastFreedFirst(node._free)


class _Cluster(RedisCluster):
    """redis-py's cluster client, able to follow an ASK redirection to a master that serves no
    slots yet (one just added, receiving its first slots: scaling out). redis-py knows the
    nodes CLUSTER SLOTS names, which leaves such a master out, and sent the redirected command
    to no node at all (AttributeError on None: a 500 for every request that read a moved
    key). The node named by the redirection is added, as a master, until the map is learnt
    again."""

    def get_node(
        self, host: str | None = None, port: int | None = None, node_name: str | None = None,
    ) -> ClusterNode | None:
        node = super().get_node(host, port, node_name)
        if node is not None or not node_name or host or port:
            return node
        node_host, _, node_port = node_name.rpartition(":")
        if not node_host or not node_port.isdigit():
            return None
        manager = self.nodes_manager
        node = ClusterNode(node_host, int(node_port), PRIMARY, **manager.connection_kwargs)
        node._free = _LastFreedFirst(node._free)
        manager.set_nodes(manager.nodes_cache, {node.name: node})
        return node


def cluster_client(
    nodes: Sequence[Address], *, password: str | None, watch: SlotMapWatch | None = None,
    **options: Any,
) -> RedisCluster:
    """A client of the cluster that `nodes` (any of its nodes) belong to; `options` are
    redis-py connection settings."""
    dispatcher = EventDispatcher()
    asking = AskingOnOneConnection()
    listeners: list[EventListenerInterface | AsyncEventListenerInterface] = [asking]
    if watch is not None:
        listeners.append(watch)
    dispatcher.register_listeners({AsyncAfterSlotsCacheRefreshEvent: listeners})
    client = _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes], password=password,
        retry=CLUSTER_RETRY, event_dispatcher=dispatcher, **options)
    asking.client = client
    if watch is not None:
        watch.client = client
    return client


class ClusterRedisBackend(PrefixedRedisBackend):
    """`PrefixedRedisBackend` on a Redis Cluster: keys routed by slot, never across slots."""

    OUTAGE_ERRORS = CLUSTER_OUTAGE_ERRORS
    #: A slot's master can be replaced: `on_master_change` says when.
    FAILS_OVER = True

    def __init__(
        self, nodes: Sequence[Address], *, password: str | None, pool_size: int,
        socket_timeout: float, connection_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # PrefixedRedisBackend's own __init__ would open a pool on one URL: skipped.
        super(PrefixedRedisBackend, self).__init__(
            serializer=NullSerializer(), timeout=NO_CALL_TIMEOUT, **kwargs)
        settings: dict[str, Any] = dict(
            max_connections=pool_size, socket_connect_timeout=socket_timeout,
            socket_timeout=socket_timeout)
        settings.update({name: value for name, value in (connection_options or {}).items()
                         if name != "decode_responses"})
        self._watch = SlotMapWatch()
        self.cluster = cluster_client(nodes, password=password, watch=self._watch,
                                      decode_responses=False, **settings)
        # What PrefixedRedisBackend's methods send through it (SET, EVAL, a pipeline of GET
        # and PTTL) is routed by key on a cluster.
        self.client = cast(redis.Redis, self.cluster)
        self._turns = asyncio.Semaphore(pool_size)
        self._learning = asyncio.Lock()
        self._turn_timeout = socket_timeout
        for name in _PRIMITIVES:
            setattr(self, name, self._bounded(getattr(self, name)))

    def _bounded(self, operation: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(operation)
        async def bounded(*args: Any, **kwargs: Any) -> Any:
            # Learnt before a turn is taken: callers waiting for the slot map must not hold
            # the turns the others wait for (a burst of 100 first requests on a cold worker
            # waited past the turn timeout and was answered as if the cluster were down).
            await self._learn_slots()
            try:
                async with asyncio.timeout(self._turn_timeout):
                    await self._turns.acquire()
            except TimeoutError:
                raise redis.ConnectionError("no cluster connection free within "
                                            f"{self._turn_timeout} s") from None
            try:
                return await operation(*args, **kwargs)
            finally:
                self._turns.release()
        return bounded

    async def _learn_slots(self) -> None:
        """Learn the slot map before commands are sent, one caller at a time. redis-py 8.1
        learns it inside the first command (and again after a lost connection), and commands
        sent by other tasks meanwhile fail ("ConnectionError", or a connection whose writer
        is already gone): 7 of 20 concurrent first commands did, none once it is learnt."""
        if not getattr(self.cluster, "_initialize", False):
            return
        async with self._learning:
            await self.cluster.initialize()

    def on_master_change(self, listener: Callable[[], None]) -> None:
        self._watch.on_master_change(listener)

    async def _multi_get(
        self, keys: list[str], encoding: str = "utf-8", _conn: Any = None
    ) -> list[str | None]:
        try:
            values = await self.cluster.mget_nonatomic(keys)
        except (ClusterError, TryAgainError) as error:
            if not _half_moved(error):
                raise
            # One at a time: a caller's turn is one connection (the pool bound).
            values = [await self.cluster.get(key) for key in keys]
        return [None if value is None else value.decode(encoding) for value in values]

    async def _multi_set(
        self, pairs: list[tuple[str, str]], ttl: float | None = None, _conn: Any = None
    ) -> bool:
        milliseconds = None if not ttl else max(1, round(ttl * 1000))
        async with self.cluster.pipeline() as pipe:
            for key, value in pairs:
                pipe.set(key, value, px=milliseconds)
            await pipe.execute()
        return True

    async def _clear(
        self, namespace: str | None = None, _conn: Any = None, keep: tuple[str, ...] = ()
    ) -> bool:
        """UNLINK every key under `namespace` on every master, except those under `keep`."""
        if not namespace:
            raise ValueError("refusing to clear without a key prefix")
        kept = tuple(prefix.encode() for prefix in keep)
        pattern = _glob_escape(namespace) + "*"
        for node in self.cluster.get_primaries():
            cursor = 0
            while True:
                # redis-py's cluster SCAN answers a cursor per node asked (one here).
                replies: Any = await self.cluster.scan(
                    cursor, match=pattern, count=self.SCAN_BATCH, target_nodes=node)
                cursors, keys = replies
                cursor = cursors[node.name]
                doomed = [key for key in keys if not (kept and key.startswith(kept))]
                if doomed:
                    await self.cluster.unlink(*doomed)  # split by slot by redis-py
                if int(cursor) == 0:
                    break
        return True

    async def multi_get_with_ttl(self, keys: list[str]) -> list[tuple[str | None, float | None]]:
        """Each key's value and remaining seconds (None: no expiry), in one round trip to
        each node involved (one, for keys of one hash tag)."""
        return await super().multi_get_with_ttl(keys)

    async def ping(self) -> None:
        await self.cluster.ping(target_nodes=RedisCluster.PRIMARIES)

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        await self.cluster.aclose()
