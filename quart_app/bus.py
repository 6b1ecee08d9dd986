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
process that deleted a token publishes the keys, every other process drops its copies and
confirms by pushing to a list named in the message, and the publisher waits (up to
CACHE_LOCAL_ACK_TIMEOUT) for as many confirmations as PUBLISH counted other subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as redis
from blinker import NamedSignal
from quart import Quart

from .cache import Cache, CacheClient
from .cache.local_tier import LocalTier
from .dispatch import send_local
from .signals import BROADCAST

logger = logging.getLogger("quart_app.bus")

VERSION = 1
EXTENSION_KEY = "signal_bus"
_OUTAGE = (redis.ConnectionError, redis.TimeoutError, OSError, TimeoutError)
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
        self.connected = False
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self.evictions_announced = 0
        self.evictions_unconfirmed = 0
        self._ack_timeout: float = app.config["CACHE_LOCAL_ACK_TIMEOUT"]
        self._tier: LocalTier | None = None
        self._app = app
        self._client: redis.Redis | None = None
        self._reconnect_callbacks: list[Callable[[], Awaitable[None]]] = []
        self._disconnect_callbacks: list[Callable[[], None]] = []
        self._publish_failing = False
        # Remote signals wait here for their receivers, in order, so that a slow receiver
        # never holds up an eviction (applied as soon as it is read). Bounded: past it,
        # the subscriber waits too, and Redis buffers.
        self._deliveries: asyncio.Queue[tuple[NamedSignal, dict[str, Any]]] = asyncio.Queue(
            maxsize=1000)
        app.extensions[EXTENSION_KEY] = self
        app.while_serving(self._serve)

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` each time the subscription is made: at start, and after an outage."""
        self._reconnect_callbacks.append(callback)

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Run `callback` each time the subscription is lost."""
        self._disconnect_callbacks.append(callback)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "connected": self.connected, "channel": self.channel, "published": self.published,
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
            await self._client.publish(self.channel, message)
        except _OUTAGE as error:
            if not self._publish_failing:
                logger.warning("signal bus: cannot publish %s (%s); other processes will not "
                               "hear of it", signal.name, error)
            self._publish_failing = True
            return
        self._publish_failing = False
        self.published += 1

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
            receivers = int(await self._client.publish(self.channel, message))
            # PUBLISH counts this process's own subscriber, which ignores its own messages.
            expected = receivers - 1 if self.connected else receivers
            confirmed = await self._await_confirmations(ack_list, expected)
        except _OUTAGE as error:
            # The bus is down for every process: each one's tier stops serving, and empties
            # itself before it serves again.
            logger.warning("signal bus: cannot announce an eviction (%s)", error)
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
        cache = Cache.client_for(self._app)
        if self._app.config["CACHE_TYPE"] == "SimpleCache":
            guard_local_cache(self, cache)
        if cache.local is not None:
            self._tier = cache.local
            guard_local_tier(self, cache.local)
        self._client = redis.Redis.from_url(self.url, socket_connect_timeout=2,
                                            socket_timeout=5, health_check_interval=5)
        loop = asyncio.get_running_loop()
        subscriber = loop.create_task(self._subscribe_forever())
        deliverer = loop.create_task(self._deliver_in_order())
        yield
        for task in (subscriber, deliverer):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()
        self._client = None

    async def _subscribe_forever(self) -> None:
        delay = 0.1
        was_connected = False
        assert self._client is not None
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if was_connected:
                    logger.warning("signal bus: subscribed again to %s", self.channel)
                await self._run_reconnect_callbacks()
                self.connected = True
                delay = 0.1
                was_connected = True
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        await self._deliver(message["data"])
            except _OUTAGE as error:
                if self.connected:
                    logger.warning("signal bus: subscription lost (%s); retrying", error)
                    for disconnected in self._disconnect_callbacks:
                        disconnected()
                self.connected = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(*_OUTAGE):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

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
            if message["origin"] == self.origin:
                return
            if "evict" in message:
                await self._evict(message["evict"], message["ack"])
                return
            signal = _SIGNALS_BY_NAME[message["signal"]]
            kwargs = BROADCAST[signal].decode(message["kwargs"])
        except (ValueError, KeyError, TypeError, ArithmeticError) as error:
            self.dropped += 1
            logger.warning("signal bus: dropped a malformed message (%s): %.200r", error, raw)
            return
        await self._deliveries.put((signal, kwargs))

    async def _deliver_in_order(self) -> None:
        while True:
            signal, kwargs = await self._deliveries.get()
            self.delivered += 1
            await send_local(signal, self._app, remote=True, **kwargs)

    async def _evict(self, eviction: dict[str, Any], ack_list: str) -> None:
        prefix, keys = eviction["prefix"], eviction["keys"]
        if not isinstance(prefix, str) or not (keys is None or isinstance(keys, list)):
            raise ValueError(f"bad eviction {eviction!r:.80}")
        if self._tier is not None:
            self._tier.evict_remote(prefix, keys)
        assert self._client is not None
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.rpush(ack_list, self.origin)
            pipe.expire(ack_list, 60)  # a publisher that gave up never pops it
            await pipe.execute()
