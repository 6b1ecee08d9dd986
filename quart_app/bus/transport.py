"""Moving the bus's messages between processes, whatever they mean.

A message is a JSON object with a version (`VERSION`) and the process it came from
(`origin`); the key that says what it is ("signal", "evict", "resync") picks the handler a
protocol registered for it (`handle`). Anything malformed, of another version or of no known
kind is logged and dropped.

Pub/sub delivers at most once: a process that is disconnected misses messages. So while the
subscription is down the transport reports itself unhealthy and runs the `on_disconnect`
callbacks, and once it is subscribed (again) the `on_reconnect` ones. Whenever messages may
have been missed (the subscription dropped, a message could not be handled, a protocol could
not keep up: `forget_copies`), it runs the `on_disconnect` callbacks and then the
`on_reconnect` ones, so every per-process copy is emptied before it serves again.

A publish that fails (after the connection's one retry, within `timeout`) was missed by every
other process: until a publish succeeds again the transport reports itself unhealthy, the
`on_undelivered` hook hears of it, and the first publish that does succeed is a "resync"
message: every other process forgets its copies as above. The subscription has a connection
of its own that is never silently re-made (redis-py's retry would resubscribe without
telling): its loss is what tells this process to distrust.

Which Redis it talks to (one server, the master the sentinels name, the master of a
cluster's slot) is a `Connection` (`connections`), given to it ready to open: the transport
reads no settings and knows nothing of caches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

logger = logging.getLogger("quart_app.bus")  # one name for the whole bus, as operators filter

VERSION = 1
#: Seconds the subscription may take to be confirmed by Redis.
SUBSCRIBE_TIMEOUT = 5.0
#: Seconds between attempts to tell the other processes, after a failed publish, to resync.
RESYNC_INTERVAL = 0.2
#: Seconds between two questions to the sentinels (or the cluster's slot map) about where
#: the master is.
MASTER_CHECK_INTERVAL = 1.0

#: What a protocol does with a message of its kind: the message, and whether this process
#: sent it.
Handler = Callable[[dict[str, Any], bool], Awaitable[None]]


class Connection(Protocol):
    """One way to reach the bus's Redis (`connections`)."""

    #: What an unreachable, restarted or failing-over Redis raises.
    errors: tuple[type[BaseException], ...]

    async def publish(self, channel: str, message: str) -> int:
        """Send `message`; how many subscribers Redis counted (all of them)."""
        ...

    def subscription(self, channel: str) -> AbstractAsyncContextManager[Any]:
        """A pubsub subscribed (or subscribing) to `channel`, closed on exit."""
        ...

    async def moved(self, channel: str, pubsub: Any) -> bool:
        """Whether the channel is now served elsewhere than where `pubsub` listens."""
        ...

    async def push(self, key: str, value: str, expire: int) -> None: ...

    async def pop(self, key: str, timeout: float) -> bool: ...

    async def aclose(self) -> None: ...


#: Opens a `Connection`, with these redis-py settings for each of its clients.
Connect = Callable[[dict[str, Any]], Connection]


class _Moved(Exception):
    """The channel is served by another node than the subscription's: subscribe again."""


class Transport:
    """One process's end of the bus: publishes, subscribes, and hands each message to the
    protocol that registered its kind."""

    def __init__(self, connect: Connect, channel: str, *, timeout: float,
                 on_undelivered: Callable[[str], None]) -> None:
        self.channel = channel
        #: Most seconds a publish waits (and a subscriber's socket is longer than that).
        self.timeout = timeout
        self.origin = uuid.uuid4().hex
        self.subscribed = False
        #: Messages received that no handler could take (malformed, or of no known kind).
        self.malformed = 0
        #: What a send raises when Redis fails (the connection's errors, once started).
        self.errors: tuple[type[BaseException], ...] = (OSError,)
        self._connect = connect
        self._connection: Connection | None = None
        self._on_undelivered = on_undelivered
        self._handlers: dict[str, tuple[Handler, bool]] = {}
        self._reconnect_callbacks: list[Callable[[], Awaitable[None]]] = []
        self._disconnect_callbacks: list[Callable[[], None]] = []
        self._publish_failing = False
        self._next_master_check = 0.0
        self._subscriber: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Healthy both ways: subscribed, and the last publish reached Redis."""
        return self.subscribed and not self._publish_failing

    @property
    def running(self) -> bool:
        """Between `start` and `close`: messages can be sent."""
        return self._connection is not None

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` each time the subscription is made: at start, and after an outage."""
        self._reconnect_callbacks.append(callback)

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Run `callback` each time the subscription is lost."""
        self._disconnect_callbacks.append(callback)

    def handle(self, kind: str, handler: Handler, *, own: bool = False) -> None:
        """Pass messages holding the key `kind` to `handler`; with `own`, this process's too
        (otherwise they are ignored: it acted before sending)."""
        self._handlers[kind] = (handler, own)

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected, "subscribed": self.subscribed,
                "publishing": not self._publish_failing, "channel": self.channel}

    async def send(self, body: dict[str, Any]) -> int:
        """Publish `body` as a message from this process, within `timeout`; how many
        subscribers (this process included) Redis counted. Raises one of `errors`."""
        assert self._connection is not None
        message = json.dumps({"v": VERSION, "origin": self.origin, **body})
        async with asyncio.timeout(self.timeout):
            return await self._connection.publish(self.channel, message)

    def publish_failed(self, what: str) -> None:
        """Other processes missed a message: unhealthy until they are told to resync, and
        the write that sent it hears of it (`on_undelivered`)."""
        self._on_undelivered(self.channel)
        if not self._publish_failing:
            logger.warning("signal bus: %s; other processes empty their caches once a publish "
                           "succeeds again", what)
        self._publish_failing = True
        if self._resync is None or self._resync.done():
            self._resync = asyncio.get_running_loop().create_task(self._resync_others())

    async def forget_copies(self, why: str) -> None:
        """A message was missed: empty every per-process copy before it serves again."""
        logger.warning("signal bus: %s; emptying this process's caches", why)
        self._run_disconnect_callbacks()
        await self._run_reconnect_callbacks()

    async def push(self, key: str, value: str, expire: int) -> None:
        """Append `value` to the list `key` (a reply to a message), kept `expire` seconds."""
        assert self._connection is not None
        await self._connection.push(key, value, expire)

    async def pop(self, key: str, timeout: float) -> bool:
        """Wait up to `timeout` for a reply in the list `key`; whether one came."""
        assert self._connection is not None
        return await self._connection.pop(key, timeout)

    def start(self) -> None:
        settings: dict[str, Any] = dict(
            socket_connect_timeout=2, health_check_interval=5,
            # Longer than any reply's wait, so a BLPOP is never cut off as an outage.
            socket_timeout=max(5.0, self.timeout + 2),
            client_name=f"quart_app-bus-{self.origin[:12]}",
        )
        self._connection = self._connect(settings)
        self.errors = self._connection.errors
        self._subscriber = asyncio.get_running_loop().create_task(self._subscribe_forever())

    async def stop(self) -> None:
        """Stop reading (and resyncing)."""
        for task in (self._subscriber, self._resync):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._subscriber = self._resync = None

    async def close(self) -> None:
        """After `stop`, and after the protocols stopped replying."""
        if self._connection is not None:
            await self._connection.aclose()
        self._connection = None

    async def _resync_others(self) -> None:
        while self._connection is not None:
            try:
                await self.send({"resync": True})
            except self.errors:
                await asyncio.sleep(RESYNC_INTERVAL)
                continue
            self._publish_failing = False
            logger.warning("signal bus: publishing again; told the other processes to resync")
            return

    async def _master_moved(self, pubsub: Any) -> bool:
        """Asked at most every MASTER_CHECK_INTERVAL."""
        if time.monotonic() < self._next_master_check:
            return False
        self._next_master_check = time.monotonic() + MASTER_CHECK_INTERVAL
        assert self._connection is not None
        return await self._connection.moved(self.channel, pubsub)

    async def _subscribe_forever(self) -> None:
        assert self._connection is not None
        connection = self._connection
        delay = 0.1
        was_connected = False
        while True:
            try:
                async with connection.subscription(self.channel) as pubsub:
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
                            raise _Moved("the channel's slot has another master")
                        if await self._master_moved(pubsub):
                            raise _Moved("the channel has another master")
            except Exception as error:
                if isinstance(error, (_Moved, *connection.errors)):
                    if self.subscribed:
                        logger.warning("signal bus: subscription lost (%s); retrying", error)
                else:
                    logger.exception("signal bus: the subscriber failed; subscribing again")
                if self.subscribed:
                    self._run_disconnect_callbacks()
                self.subscribed = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

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
            kind = next((kind for kind in self._handlers if kind in message), None)
            if kind is not None and self._handlers[kind][1]:
                await self._handlers[kind][0](message, own)
                return
            if own:
                return
            if message.get("resync") is True:
                await self.forget_copies("another process could not publish")
                return
            if kind is None:
                raise ValueError(f"no known kind of message {message!r:.80}")
            await self._handlers[kind][0](message, own)
        except Exception as error:
            self.malformed += 1
            logger.warning("signal bus: dropped a malformed message (%s): %.200r", error, raw)
