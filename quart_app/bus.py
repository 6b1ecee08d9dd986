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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import redis.asyncio as redis
from blinker import NamedSignal
from quart import Quart

from .cache import Cache, CacheClient
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


class SignalBus:
    def __init__(self, app: Quart) -> None:
        self.url: str = app.config["SIGNALS_BUS_URL"]
        self.channel: str = app.config["SIGNALS_BUS_CHANNEL"]
        self.origin = uuid.uuid4().hex
        self.connected = False
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self._app = app
        self._client: redis.Redis | None = None
        self._reconnect_callbacks: list[Callable[[], Awaitable[None]]] = []
        self._disconnect_callbacks: list[Callable[[], None]] = []
        self._publish_failing = False
        app.extensions[EXTENSION_KEY] = self
        app.while_serving(self._serve)

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` each time the subscription is made: at start, and after an outage."""
        self._reconnect_callbacks.append(callback)

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Run `callback` each time the subscription is lost."""
        self._disconnect_callbacks.append(callback)

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected, "channel": self.channel,
                "published": self.published, "delivered": self.delivered,
                "dropped": self.dropped}

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

    async def _serve(self) -> AsyncGenerator[None, None]:
        if self._app.config["CACHE_TYPE"] == "SimpleCache":
            guard_local_cache(self, Cache.client_for(self._app))
        self._client = redis.Redis.from_url(self.url, socket_connect_timeout=2,
                                            socket_timeout=5, health_check_interval=5)
        subscriber = asyncio.get_running_loop().create_task(self._subscribe_forever())
        yield
        subscriber.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await subscriber
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
            signal = _SIGNALS_BY_NAME[message["signal"]]
            kwargs = BROADCAST[signal].decode(message["kwargs"])
        except (ValueError, KeyError, TypeError, ArithmeticError) as error:
            self.dropped += 1
            logger.warning("signal bus: dropped a malformed message (%s): %.200r", error, raw)
            return
        self.delivered += 1
        await send_local(signal, self._app, remote=True, **kwargs)
