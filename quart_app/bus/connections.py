"""The three ways the bus reaches Redis: one server, the sentinels' master, a cluster's slot.

Each is a `transport.Connection`: a publishing client (a pool, also used for the replies to
evictions) and a subscription of its own, made without retry (redis-py would re-make a dead
subscription silently, and the messages of the gap would be lost without this process
knowing to distrust).

- `ServerConnection` (a `redis://` SIGNALS_BUS_URL): a publish is retried once on a fresh
  connection, as a Redis restart leaves the pooled ones dead.
- `SentinelConnection` (`redis+sentinel://`): on the master the sentinels name. A failover
  breaks the subscription, which is made again on the new master; a master that is demoted
  rather than killed keeps its subscribers while publishes go to the new one, so `moved` asks
  the sentinels where the master is.
- `ClusterConnection` (`redis+cluster://`): Redis 7's sharded pub/sub. The channel lives in
  one slot, every process subscribes (SSUBSCRIBE) on the master serving that slot, and
  SPUBLISH, sent to that master, answers how many subscribers it has: all of them, so the
  count of confirmations to wait for is exact. (Plain PUBLISH on a cluster is broadcast over
  the cluster bus and counts only the subscribers of the node it was sent to.) When the
  slot's master changes (a failover, a resharding) the master drops its shard subscribers
  (SUNSUBSCRIBE) or dies, and the subscription is made again on the slot's new master;
  `moved` checks that the publishing client, which learns the slot map from MOVED replies,
  still routes the channel to the node subscribed on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..cache.backends import RETRY_ON_A_FRESH_CONNECTION
from ..cache.cluster import CLUSTER_OUTAGE_ERRORS, cluster_client
from ..cache.sentinel import master_client
from ..config import CLUSTER_SCHEME, SENTINEL_SCHEME, parse_cluster_url, parse_sentinel_url
from .transport import Connect, Connection

#: Connections to the bus's Redis: one subscription, publishes, and one per eviction waiting
#: for its confirmations. When all are busy, callers wait (up to the publish timeout).
POOL_SIZE = 64


def connector(url: str, *, timeout: float, password: str | None,
              sentinel_password: str | None) -> Connect:
    """How to open the bus's connection for SIGNALS_BUS_URL `url`; `timeout` is the most a
    publish waits for a pooled connection."""
    def connect(settings: dict[str, Any]) -> Connection:
        if url.startswith(CLUSTER_SCHEME + "://"):
            return ClusterConnection(url, settings, password=password)
        if url.startswith(SENTINEL_SCHEME + "://"):
            return SentinelConnection(url, settings, timeout=timeout, password=password,
                                      sentinel_password=sentinel_password)
        return ServerConnection(url, settings, timeout=timeout)
    return connect


def _subscribing(settings: dict[str, Any]) -> dict[str, Any]:
    return dict(retry=Retry(NoBackoff(), 0), **settings)


def _publishing(settings: dict[str, Any], timeout: float) -> dict[str, Any]:
    return dict(max_connections=POOL_SIZE, timeout=timeout, retry=RETRY_ON_A_FRESH_CONNECTION,
                **settings)


class _Pooled:
    """What every kind shares: a publishing client, whose commands carry the replies."""

    errors: tuple[type[BaseException], ...] = CLUSTER_OUTAGE_ERRORS  # a server's, a cluster's

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    async def publish(self, channel: str, message: str) -> int:
        return int(await self.client.publish(channel, message))

    async def push(self, key: str, value: str, expire: int) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, value)
            pipe.expire(key, expire)
            await pipe.execute()

    async def pop(self, key: str, timeout: float) -> bool:
        return await self.client.blpop([key], timeout) is not None

    async def moved(self, channel: str, pubsub: Any) -> bool:
        return False

    async def aclose(self) -> None:
        await self.client.aclose()


class _OneServer(_Pooled):
    """Publishes and subscribes on one server (which the sentinels may replace)."""

    def __init__(self, client: redis.Redis, subscriber: redis.Redis) -> None:
        super().__init__(client)
        self._subscriber = subscriber

    @contextlib.asynccontextmanager
    async def subscription(self, channel: str) -> AsyncIterator[Any]:
        pubsub: Any = self._subscriber.pubsub()
        try:
            await pubsub.subscribe(channel)
            yield pubsub
        finally:
            with contextlib.suppress(*self.errors):
                await pubsub.aclose()

    async def aclose(self) -> None:
        await super().aclose()
        await self._subscriber.aclose()


class ServerConnection(_OneServer):
    def __init__(self, url: str, settings: dict[str, Any], *, timeout: float) -> None:
        pool = redis.BlockingConnectionPool.from_url(url, **_publishing(settings, timeout))
        super().__init__(redis.Redis(connection_pool=pool),
                         redis.Redis.from_url(url, **_subscribing(settings)))


class SentinelConnection(_OneServer):
    def __init__(self, url: str, settings: dict[str, Any], *, timeout: float,
                 password: str | None, sentinel_password: str | None) -> None:
        sentinels, self._master_name, database = parse_sentinel_url(url)
        self._sentinel, client = master_client(
            sentinels, self._master_name, db=database, password=password,
            sentinel_password=sentinel_password, **_publishing(settings, timeout))
        super().__init__(client, self._sentinel.master_for(
            self._master_name, db=database, password=password, **_subscribing(settings)))

    async def moved(self, channel: str, pubsub: Any) -> bool:
        """Whether the sentinels now name another master than the one `pubsub` is on (no
        answer is not a move)."""
        try:
            address = await self._sentinel.discover_master(self._master_name)
        except self.errors:
            return False
        connection = pubsub.connection
        if connection is None or (connection.host, connection.port) == tuple(address):
            return False
        # The publishing pool's idle connections go now, busy ones when released.
        pool: Any = self.client.connection_pool
        await pool.get_master_address()
        return True

    async def aclose(self) -> None:
        await super().aclose()
        await self._sentinel.aclose()


class ClusterConnection(_Pooled):
    def __init__(self, url: str, settings: dict[str, Any], *, password: str | None) -> None:
        self._cluster = cluster_client(parse_cluster_url(url), password=password,
                                       max_connections=POOL_SIZE, **settings)
        # Its commands (BLPOP, RPUSH, a pipeline) are routed by key on a cluster.
        super().__init__(cast(redis.Redis, self._cluster))
        self._subscriber_settings = dict(password=password, **_subscribing(settings))

    async def publish(self, channel: str, message: str) -> int:
        return int(await self._cluster.spublish(channel, message))

    @contextlib.asynccontextmanager
    async def subscription(self, channel: str) -> AsyncIterator[Any]:
        subscriber = await self._channel_subscriber(channel)
        pubsub: Any = subscriber.pubsub()
        try:
            await pubsub.ssubscribe(channel)
            yield pubsub
        finally:
            with contextlib.suppress(*self.errors):
                await pubsub.aclose()
                await subscriber.aclose()

    async def moved(self, channel: str, pubsub: Any) -> bool:
        connection = pubsub.connection
        return connection is not None and (
            connection.host, connection.port) != self._channel_master(channel)

    async def _channel_subscriber(self, channel: str) -> redis.Redis:
        """A client of the master that serves the channel's slot now, learnt afresh."""
        if getattr(self._cluster, "_initialize", False):
            await self._cluster.initialize()  # the whole client: its first use
        else:
            await self._cluster.nodes_manager.initialize()
        host, port = self._channel_master(channel)
        return redis.Redis(host=host, port=port, **self._subscriber_settings)

    def _channel_master(self, channel: str) -> tuple[str, int]:
        """Where the publishing client sends the channel's messages (SPUBLISH) now."""
        node = self._cluster.get_node_from_key(channel)
        if node is None:
            raise redis.ConnectionError("no node serves the channel's slot")
        return node.host, int(node.port)
