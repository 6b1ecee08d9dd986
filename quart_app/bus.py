"""The signal bus: broadcast signals reach every process through Redis pub/sub.

With `SIGNALS_BUS_URL` set, `dispatch.send` publishes each broadcast signal (see
`signals.BROADCAST`) after its local receivers ran; every other process subscribed to the
channel re-sends it to its own receivers, once, and never back to the process it came from.
Messages are JSON with a version number; anything malformed, of another version or for an
unknown signal is logged and dropped.

Pub/sub delivers at most once: a process that is disconnected misses messages. So while the
subscription is down the bus reports itself unhealthy and runs the `on_disconnect`
callbacks, and once it is subscribed (again) the `on_reconnect` ones: a memory cache, whose
invalidations from other processes come over the bus, is suspended while the bus is down and
cleared before it serves again.

The bus also carries the local tier's evictions (CACHE_LOCAL, see `cache.local_tier`): the
process that deleted a token publishes the keys, every subscribed process (itself included)
drops its copies and confirms by pushing to a list named in the message, and the publisher
waits (up to CACHE_LOCAL_ACK_TIMEOUT) for as many confirmations as PUBLISH counted
subscribers. That count is exact on one Redis server, and on a Redis Cluster too (below).

Whenever messages may have been missed (the subscription dropped, a message could not be
handled, remote signals arrived faster than their receivers ran), the bus runs the
`on_disconnect` callbacks and then the `on_reconnect` ones, so every per-process copy is
emptied before it serves again.

A Redis restart leaves the pooled connections of the old server dead: a publish is retried
once on a fresh connection (never after a timeout: a stalled Redis would only be waited for
twice), and waits at most CACHE_LOCAL_ACK_TIMEOUT. One that still fails was missed by every
other process, so until a publish succeeds again the bus reports itself unhealthy, and the
first one that does is a "resync" message: every process empties its copies as above.
The subscription has a connection of its own that is never silently re-made (redis-py's
retry would resubscribe without telling): its loss is what tells this process to distrust.

With `RedisSentinelCache` the bus is on the master the sentinels name (a `redis+sentinel://`
SIGNALS_BUS_URL): a failover breaks the subscription, which is made again on the new master,
with every per-process copy emptied as above. A master that is demoted rather than killed
keeps its subscribers while publishes go to the new one, so the subscriber also asks the
sentinels every MASTER_CHECK_INTERVAL where the master is, and moves when it moved.

With `RedisClusterCache` the bus is on the cluster (a `redis+cluster://host:port,...`
SIGNALS_BUS_URL) and uses Redis 7's sharded pub/sub: the channel lives in one slot, every
process subscribes (SSUBSCRIBE) on the master serving that slot, and SPUBLISH, sent to that
master, answers how many subscribers it has: all of them, so the count of confirmations to
wait for is exact. (Plain PUBLISH on a cluster is broadcast over the cluster bus and counts
only the subscribers of the node it was sent to.) When the slot's master changes (a
failover, a resharding) the master drops its shard subscribers (SUNSUBSCRIBE) or dies: the
subscription is lost as above, and made again on the slot's new master. The subscriber also
checks every MASTER_CHECK_INTERVAL that the publishing client, which learns the slot map from
MOVED replies, still routes the channel to the node it is subscribed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, cast

import redis.asyncio as redis
from blinker import NamedSignal
from quart import Quart
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from .cache import CacheClient
from .cache.backends import RETRY_ON_A_FRESH_CONNECTION
from .cache.cluster import CLUSTER_OUTAGE_ERRORS, cluster_client
from .cache.local_tier import LocalTier
from .cache.sentinel import master_client
from .cache.write_guard import note_undelivered
from .config import CLUSTER_SCHEME, SENTINEL_SCHEME, parse_cluster_url, parse_sentinel_url
from .dispatch import send_local
from .extensions import cache as app_cache
from .signals import BROADCAST

logger = logging.getLogger("quart_app.bus")

VERSION = 1
EXTENSION_KEY = "signal_bus"
_OUTAGE = CLUSTER_OUTAGE_ERRORS  # a single server's errors, and a cluster's
#: Connections to the bus's Redis: one subscription, publishes, and one per eviction waiting
#: for its confirmations. When all are busy, callers wait (up to the ack timeout).
POOL_SIZE = 64
#: Remote signals waiting for their receivers, at most.
DELIVERY_QUEUE_SIZE = 1000
#: Seconds the subscription may take to be confirmed by Redis.
SUBSCRIBE_TIMEOUT = 5.0
#: Seconds between attempts to tell the other processes, after a failed publish, to resync.
RESYNC_INTERVAL = 0.2
#: Seconds between two questions to the sentinels about where the master is.
MASTER_CHECK_INTERVAL = 1.0
_SIGNALS_BY_NAME = {signal.name: signal for signal in BROADCAST}


def guard_local_cache(bus: SignalBus, client: CacheClient) -> None:
    """Keep a per-process cache from serving while invalidations could be missed."""
    client.suspend()  # until the first subscription: a remote insert could land before it
    bus.on_disconnect(client.suspend)
    bus.on_reconnect(client.resume)


def guard_local_tier(bus: SignalBus, tier: LocalTier) -> None:
    """The local tier serves only while evictions from other processes can reach it."""
    tier.suspend()
    bus.on_disconnect(tier.suspend)
    bus.on_reconnect(tier.resume)
    tier.attach(bus.announce_eviction)


class SignalBus:
    def __init__(self, app: Quart) -> None:
        self.url: str = app.config["SIGNALS_BUS_URL"]
        self.channel: str = app.config["SIGNALS_BUS_CHANNEL"]
        self.origin = uuid.uuid4().hex
        self.subscribed = False
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self.evictions_announced = 0
        self.evictions_unconfirmed = 0
        self._ack_timeout: float = app.config["CACHE_LOCAL_ACK_TIMEOUT"]
        self._tier: LocalTier | None = None
        self._app = app
        self._client: redis.Redis | None = None
        self._subscriber_client: redis.Redis | None = None
        self._sentinel: Sentinel | None = None
        self._master_name = ""
        #: The bus on a Redis Cluster: the publishing client, and its startup nodes.
        self._cluster: RedisCluster | None = None
        self._cluster_settings: dict[str, Any] = {}
        self._next_master_check = 0.0
        self._resync: asyncio.Task[None] | None = None
        self._reconnect_callbacks: list[Callable[[], Awaitable[None]]] = []
        self._disconnect_callbacks: list[Callable[[], None]] = []
        self._publish_failing = False
        # Remote signals wait here for their receivers, in order, so that a slow receiver
        # never holds up an eviction (applied as soon as it is read).
        self._deliveries: asyncio.Queue[tuple[NamedSignal, dict[str, Any]]] = asyncio.Queue(
            maxsize=DELIVERY_QUEUE_SIZE)
        self._acknowledgements: set[asyncio.Task[None]] = set()
        app.extensions[EXTENSION_KEY] = self
        app.while_serving(self._serve)

    @property
    def connected(self) -> bool:
        """Healthy both ways: subscribed, and the last publish reached Redis."""
        return self.subscribed and not self._publish_failing

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` each time the subscription is made: at start, and after an outage."""
        self._reconnect_callbacks.append(callback)

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Run `callback` each time the subscription is lost."""
        self._disconnect_callbacks.append(callback)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "connected": self.connected, "subscribed": self.subscribed,
            "publishing": not self._publish_failing, "channel": self.channel,
            "published": self.published,
            "delivered": self.delivered, "dropped": self.dropped,
        }
        if self._tier is not None:
            stats["local_tier"] = {**self._tier.stats(),
                                   "evictions_announced": self.evictions_announced,
                                   "evictions_unconfirmed": self.evictions_unconfirmed}
        return stats

    async def publish(self, signal: NamedSignal, kwargs: dict[str, Any]) -> None:
        codec = BROADCAST.get(signal)
        if codec is None or self._client is None:
            return
        message = json.dumps({"v": VERSION, "origin": self.origin, "signal": signal.name,
                              "kwargs": codec.encode(kwargs)})
        try:
            async with asyncio.timeout(self._ack_timeout):
                await self._publish(message)
        except _OUTAGE as error:
            self._publish_failed(f"cannot publish {signal.name} ({error or 'timed out'})")
            return
        self.published += 1

    def _publish_failed(self, what: str) -> None:
        """Other processes missed a message: unhealthy until they are told to resync, and
        the write that sent it is not acknowledged as seen everywhere (`write_guard`)."""
        note_undelivered(self.channel)
        if not self._publish_failing:
            logger.warning("signal bus: %s; other processes empty their caches once a publish "
                           "succeeds again", what)
        self._publish_failing = True
        if self._resync is None or self._resync.done():
            self._resync = asyncio.get_running_loop().create_task(self._resync_others())

    async def _resync_others(self) -> None:
        message = json.dumps({"v": VERSION, "origin": self.origin, "resync": True})
        while self._client is not None:
            try:
                async with asyncio.timeout(self._ack_timeout):
                    await self._publish(message)
            except _OUTAGE:
                await asyncio.sleep(RESYNC_INTERVAL)
                continue
            self._publish_failing = False
            logger.warning("signal bus: publishing again; told the other processes to resync")
            return

    async def _publish(self, message: str) -> int:
        """Send `message` to every subscribed process; how many subscribers Redis counted."""
        assert self._client is not None
        if self._cluster is not None:
            return int(await self._cluster.spublish(self.channel, message))
        return int(await self._client.publish(self.channel, message))

    async def announce_eviction(self, prefix: str, keys: Sequence[str] | None) -> None:
        """Make every other process drop its local copies of `keys` (None: all under
        `prefix`) and return once each confirmed, or after CACHE_LOCAL_ACK_TIMEOUT."""
        if self._client is None:
            return
        ack_list = f"{self.channel}:ack:{uuid.uuid4().hex}"
        message = json.dumps({"v": VERSION, "origin": self.origin, "ack": ack_list,
                              "evict": {"prefix": prefix,
                                        "keys": None if keys is None else list(keys)}})
        try:
            # Every subscriber confirms, this process's own included: it is counted too.
            async with asyncio.timeout(self._ack_timeout):
                expected = await self._publish(message)
            confirmed = await self._await_confirmations(ack_list, expected)
        except _OUTAGE as error:
            # If the bus is down, every process's tier stops serving and is emptied before
            # it serves again; if only this process cannot reach it, the resync does it.
            self.evictions_unconfirmed += 1
            self._publish_failed(f"cannot announce an eviction ({error or 'timed out'})")
            return
        self.evictions_announced += 1
        if confirmed < expected:
            self.evictions_unconfirmed += 1
            logger.warning(
                "signal bus: %d of %d processes did not confirm an eviction within %.1f s; "
                "their local copies live at most CACHE_LOCAL_TIMEOUT",
                expected - confirmed, expected, self._ack_timeout,
            )

    async def _await_confirmations(self, ack_list: str, expected: int) -> int:
        assert self._client is not None
        confirmed = 0
        deadline = time.monotonic() + self._ack_timeout
        while confirmed < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or await self._client.blpop([ack_list], remaining) is None:
                break
            confirmed += 1
        return confirmed

    async def _serve(self) -> AsyncGenerator[None, None]:
        cache = app_cache.client_for(self._app)
        if self._app.config["CACHE_TYPE"] == "SimpleCache":
            guard_local_cache(self, cache)
        if cache.local is not None:
            self._tier = cache.local
            guard_local_tier(self, cache.local)
        settings: dict[str, Any] = dict(
            socket_connect_timeout=2, health_check_interval=5,
            # Longer than any confirmation wait, so a BLPOP is never cut off as an outage.
            socket_timeout=max(5.0, self._ack_timeout + 2),
            client_name=f"quart_app-bus-{self.origin[:12]}",
        )
        self._client, self._subscriber_client = self._connect(settings)
        loop = asyncio.get_running_loop()
        subscriber = loop.create_task(self._subscribe_forever())
        deliverer = loop.create_task(self._deliver_in_order())
        yield
        resync = [] if self._resync is None else [self._resync]
        for task in (subscriber, deliverer, *resync, *self._acknowledgements):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()
        if self._subscriber_client is not None:
            await self._subscriber_client.aclose()
        if self._sentinel is not None:
            await self._sentinel.aclose()
        self._client = self._subscriber_client = self._sentinel = self._cluster = None

    def _connect(self, settings: dict[str, Any]) -> tuple[redis.Redis, redis.Redis | None]:
        """The publishing client (a pool) and the subscriber's, on the URL's server or on the
        master the sentinels name. On a cluster the subscriber's is made by each subscription,
        on the master of the channel's slot at the time (`_cluster_subscriber`)."""
        # No retry here: redis-py would re-make a dead subscription silently, and the
        # messages of the gap would be lost without this process knowing to distrust.
        subscribing: dict[str, Any] = dict(retry=Retry(NoBackoff(), 0), **settings)
        if self.url.startswith(CLUSTER_SCHEME + "://"):
            password = self._app.config["CACHE_REDIS_PASSWORD"]
            self._cluster_settings = dict(password=password, **subscribing)
            self._cluster = cluster_client(parse_cluster_url(self.url), password=password,
                                           max_connections=POOL_SIZE, **settings)
            # Its commands (BLPOP, RPUSH, a pipeline) are routed by key on a cluster.
            return cast(redis.Redis, self._cluster), None
        publishing: dict[str, Any] = dict(max_connections=POOL_SIZE, timeout=self._ack_timeout,
                                          retry=RETRY_ON_A_FRESH_CONNECTION, **settings)
        if not self.url.startswith(SENTINEL_SCHEME + "://"):
            pool = redis.BlockingConnectionPool.from_url(self.url, **publishing)
            return (redis.Redis(connection_pool=pool),
                    redis.Redis.from_url(self.url, **subscribing))
        sentinels, self._master_name, database = parse_sentinel_url(self.url)
        credentials = dict(db=database, password=self._app.config["CACHE_REDIS_PASSWORD"],
                           sentinel_password=self._app.config["CACHE_REDIS_SENTINEL_PASSWORD"])
        self._sentinel, client = master_client(sentinels, self._master_name, **credentials,
                                               **publishing)
        subscriber = self._sentinel.master_for(
            self._master_name, db=database, password=credentials["password"], **subscribing)
        return client, subscriber

    async def _cluster_subscriber(self) -> redis.Redis:
        """A client of the master that serves the channel's slot now, learnt afresh."""
        assert self._cluster is not None
        if getattr(self._cluster, "_initialize", False):
            await self._cluster.initialize()  # the whole client: its first use
        else:
            await self._cluster.nodes_manager.initialize()
        host, port = self._channel_master()
        return redis.Redis(host=host, port=port, **self._cluster_settings)

    def _channel_master(self) -> tuple[str, int]:
        """Where the publishing client sends the channel's messages (SPUBLISH) now."""
        assert self._cluster is not None
        node = self._cluster.get_node_from_key(self.channel)
        if node is None:
            raise redis.ConnectionError("no node serves the channel's slot")
        return node.host, int(node.port)

    async def _master_moved(self, pubsub: Any) -> bool:
        """Whether the sentinels now name another master than the one this subscription is on
        (asked at most every MASTER_CHECK_INTERVAL; no answer is not a move), or, on a
        cluster, the publishing client sends the channel's messages to another node."""
        if time.monotonic() < self._next_master_check:
            return False
        self._next_master_check = time.monotonic() + MASTER_CHECK_INTERVAL
        if self._cluster is not None:
            connection = pubsub.connection
            return connection is not None and (
                connection.host, connection.port) != self._channel_master()
        if self._sentinel is None:
            return False
        try:
            address = await self._sentinel.discover_master(self._master_name)
        except _OUTAGE:
            return False
        connection = pubsub.connection
        if connection is None or (connection.host, connection.port) == tuple(address):
            return False
        if self._client is not None:  # its idle connections go now, busy ones when released
            pool: Any = self._client.connection_pool
            await pool.get_master_address()
        return True

    async def _subscribe_forever(self) -> None:
        delay = 0.1
        was_connected = False
        while True:
            subscriber = None
            pubsub: Any = None
            try:
                if self._cluster is not None:
                    subscriber = await self._cluster_subscriber()
                    pubsub = subscriber.pubsub()
                    await pubsub.ssubscribe(self.channel)
                else:
                    assert self._subscriber_client is not None
                    pubsub = self._subscriber_client.pubsub()
                    await pubsub.subscribe(self.channel)
                await self._await_subscribed(pubsub)
                if was_connected:
                    logger.warning("signal bus: subscribed again to %s", self.channel)
                await self._run_reconnect_callbacks()
                self.subscribed = True
                delay = 0.1
                was_connected = True
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] in ("message", "smessage"):
                        await self._deliver(message["data"])
                    elif message is not None and message["type"] == "sunsubscribe":
                        raise redis.ConnectionError("the channel's slot has another master")
                    if await self._master_moved(pubsub):
                        raise redis.ConnectionError("the channel has another master")
            except Exception as error:
                if isinstance(error, _OUTAGE):
                    if self.subscribed:
                        logger.warning("signal bus: subscription lost (%s); retrying", error)
                else:
                    logger.exception("signal bus: the subscriber failed; subscribing again")
                if self.subscribed:
                    self._run_disconnect_callbacks()
                self.subscribed = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(*_OUTAGE):
                    if pubsub is not None:
                        await pubsub.aclose()
                    if subscriber is not None:
                        await subscriber.aclose()

    async def _await_subscribed(self, pubsub: Any) -> None:
        """Until Redis confirms the subscription, a PUBLISH would not count this process."""
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
            while True:
                message = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT)
                if message is not None and message["type"] in ("subscribe", "ssubscribe"):
                    return

    def _run_disconnect_callbacks(self) -> None:
        for disconnected in self._disconnect_callbacks:
            disconnected()

    async def _run_reconnect_callbacks(self) -> None:
        for callback in self._reconnect_callbacks:
            try:
                await callback()
            except Exception:
                logger.exception("signal bus: reconnect callback %r failed", callback)

    async def _deliver(self, raw: bytes | str) -> None:
        try:
            message = json.loads(raw)
            if not isinstance(message, dict) or message.get("v") != VERSION:
                raise ValueError(f"unknown message version {message!r:.80}")
            own = message["origin"] == self.origin
            if "evict" in message:
                self._evict(message["evict"], message["ack"], own)
                return
            if own:
                return
            if message.get("resync") is True:
                await self._forget_copies("another process could not publish")
                return
            signal = _SIGNALS_BY_NAME[message["signal"]]
            kwargs = BROADCAST[signal].decode(message["kwargs"])
        except Exception as error:
            self.dropped += 1
            logger.warning("signal bus: dropped a malformed message (%s): %.200r", error, raw)
            return
        try:
            self._deliveries.put_nowait((signal, kwargs))
        except asyncio.QueueFull:
            # Never wait here: evictions behind this message would wait too. The signal is
            # lost to this process's receivers, so forget every copy it may have kept fresh.
            self.dropped += 1
            await self._forget_copies(f"{self._deliveries.qsize()} remote signals await "
                                      f"their receivers; dropped {signal.name}")

    async def _forget_copies(self, why: str) -> None:
        """A message was missed: empty every per-process copy before it serves again."""
        logger.warning("signal bus: %s; emptying this process's caches", why)
        self._run_disconnect_callbacks()
        await self._run_reconnect_callbacks()

    async def _deliver_in_order(self) -> None:
        while True:
            signal, kwargs = await self._deliveries.get()
            await send_local(signal, self._app, remote=True, **kwargs)
            self.delivered += 1  # its receivers have run

    def _evict(self, eviction: dict[str, Any], ack_list: str, own: bool) -> None:
        prefix, keys = eviction["prefix"], eviction["keys"]
        if not isinstance(prefix, str) or not isinstance(ack_list, str) or not (
                keys is None or (isinstance(keys, list)
                                 and all(isinstance(key, str) for key in keys))):
            raise ValueError(f"bad eviction {eviction!r:.80}")
        if self._tier is not None and not own:  # the origin evicted before publishing
            self._tier.evict_remote(prefix, keys)
        # Confirmed from a task of its own: the subscriber goes on reading at once.
        task = asyncio.get_running_loop().create_task(self._acknowledge(ack_list))
        self._acknowledgements.add(task)
        task.add_done_callback(self._acknowledgements.discard)

    async def _acknowledge(self, ack_list: str) -> None:
        assert self._client is not None
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.rpush(ack_list, self.origin)
                pipe.expire(ack_list, 60)  # a publisher that gave up never pops it
                await pipe.execute()
        except Exception as error:
            # Unconfirmed, the publisher waits out its timeout and says so.
            logger.warning("signal bus: cannot confirm an eviction (%s)", error)
