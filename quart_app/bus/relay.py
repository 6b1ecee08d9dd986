"""The signal relay: broadcast signals reach every process's receivers over the bus.

`dispatch.send` hands each broadcast signal (see `signals.BROADCAST`) to `SignalRelay.publish`
after its local receivers ran; every other process re-sends it to its own receivers, once,
and never back to the process it came from. A signal unknown here, or whose arguments do not
decode, is dropped as malformed (`transport`).

Remote signals wait in a queue for their receivers, in order, so that a slow receiver never
holds up the bus's other messages (an eviction is applied as soon as it is read). A signal
that finds the queue full is lost to this process's receivers, so every copy they may have
kept fresh is forgotten (`Transport.forget_copies`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from blinker import NamedSignal
from quart import Quart

from ..dispatch import send_local
from ..signals import BROADCAST
from .transport import Transport

#: Remote signals waiting for their receivers, at most.
DELIVERY_QUEUE_SIZE = 1000
_SIGNALS_BY_NAME = {signal.name: signal for signal in BROADCAST}


class SignalRelay:
    """What `dispatch.set_relay` installs (a `dispatch.Relay`)."""

    def __init__(self, app: Quart, transport: Transport, *,
                 queue_size: int = DELIVERY_QUEUE_SIZE) -> None:
        self.published = 0
        self.delivered = 0
        #: Remote signals this process's receivers never saw, the queue being full.
        self.dropped = 0
        self._app = app
        self._transport = transport
        self._deliveries: asyncio.Queue[tuple[NamedSignal, dict[str, Any]]] = asyncio.Queue(
            maxsize=queue_size)
        self._deliverer: asyncio.Task[None] | None = None
        transport.handle("signal", self._receive)

    async def publish(self, signal: NamedSignal, kwargs: dict[str, Any]) -> None:
        codec = BROADCAST.get(signal)
        if codec is None or not self._transport.running:
            return
        try:
            await self._transport.send({"signal": signal.name, "kwargs": codec.encode(kwargs)})
        except self._transport.errors as error:
            self._transport.publish_failed(f"cannot publish {signal.name} ({error or 'timed out'})")
            return
        self.published += 1

    def start(self) -> None:
        self._deliverer = asyncio.get_running_loop().create_task(self._deliver_in_order())

    async def stop(self) -> None:
        if self._deliverer is not None:
            self._deliverer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._deliverer
        self._deliverer = None

    async def _receive(self, message: dict[str, Any], own: bool) -> None:
        signal = _SIGNALS_BY_NAME[message["signal"]]
        kwargs = BROADCAST[signal].decode(message["kwargs"])
        try:
            self._deliveries.put_nowait((signal, kwargs))
        except asyncio.QueueFull:
            # Never wait here: evictions behind this message would wait too.
            self.dropped += 1
            await self._transport.forget_copies(
                f"{self._deliveries.qsize()} remote signals await their receivers; "
                f"dropped {signal.name}")

    async def _deliver_in_order(self) -> None:
        while True:
            signal, kwargs = await self._deliveries.get()
            await send_local(signal, self._app, remote=True, **kwargs)
            self.delivered += 1  # its receivers have run
