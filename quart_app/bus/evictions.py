"""The local tier's evictions (CACHE_LOCAL, see `cache.local_tier`), acknowledged.

The process that deleted a token announces the keys; every subscribed process (itself
included) drops its copies and confirms by pushing to a list named in the message, and the
announcer waits (up to the ack timeout, CACHE_LOCAL_ACK_TIMEOUT) for as many confirmations as
Redis counted subscribers: exact on one Redis server, and on a Redis Cluster too (sharded
pub/sub, see `connections`). A confirmation is pushed from a task of its own, so the bus goes
on reading at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ..cache.local_tier import LocalTier
from .transport import Transport, logger

#: Seconds an unread list of confirmations is kept (an announcer that gave up never pops it).
ACK_LIST_EXPIRY = 60


class Evictions:
    def __init__(self, transport: Transport, *, ack_timeout: float) -> None:
        self.announced = 0
        self.unconfirmed = 0
        #: The tier whose copies other processes' evictions drop (none: they are only
        #: confirmed).
        self.tier: LocalTier | None = None
        self._transport = transport
        self._ack_timeout = ack_timeout
        self._acknowledgements: set[asyncio.Task[None]] = set()
        transport.handle("evict", self._receive, own=True)

    def stats(self) -> dict[str, Any] | None:
        """The tier's figures and these counts (None: no tier)."""
        if self.tier is None:
            return None
        return {**self.tier.stats(), "evictions_announced": self.announced,
                "evictions_unconfirmed": self.unconfirmed}

    async def announce(self, prefix: str, keys: Sequence[str] | None) -> None:
        """Make every other process drop its local copies of `keys` (None: all under
        `prefix`) and return once each confirmed, or after the ack timeout."""
        if not self._transport.running:
            return
        ack_list = f"{self._transport.channel}:ack:{uuid.uuid4().hex}"
        try:
            # Every subscriber confirms, this process's own included: it is counted too.
            expected = await self._transport.send(
                {"ack": ack_list,
                 "evict": {"prefix": prefix, "keys": None if keys is None else list(keys)}})
            confirmed = await self._await_confirmations(ack_list, expected)
        except self._transport.errors as error:
            # If the bus is down, every process's tier stops serving and is emptied before
            # it serves again; if only this process cannot reach it, the resync does it.
            self.unconfirmed += 1
            self._transport.publish_failed(
                f"cannot announce an eviction ({error or 'timed out'})")
            return
        self.announced += 1
        if confirmed < expected:
            self.unconfirmed += 1
            logger.warning(
                "signal bus: %d of %d processes did not confirm an eviction within %.1f s; "
                "their local copies live at most CACHE_LOCAL_TIMEOUT",
                expected - confirmed, expected, self._ack_timeout,
            )

    async def stop(self) -> None:
        for task in list(self._acknowledgements):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _await_confirmations(self, ack_list: str, expected: int) -> int:
        confirmed = 0
        deadline = time.monotonic() + self._ack_timeout
        while confirmed < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self._transport.pop(ack_list, remaining):
                break
            confirmed += 1
        return confirmed

    async def _receive(self, message: dict[str, Any], own: bool) -> None:
        eviction, ack_list = message["evict"], message["ack"]
        prefix, keys = eviction["prefix"], eviction["keys"]
        if not isinstance(prefix, str) or not isinstance(ack_list, str) or not (
                keys is None or (isinstance(keys, list)
                                 and all(isinstance(key, str) for key in keys))):
            raise ValueError(f"bad eviction {eviction!r:.80}")
        if self.tier is not None and not own:  # the origin evicted before announcing
            self.tier.evict_remote(prefix, keys)
        task = asyncio.get_running_loop().create_task(self._acknowledge(ack_list))
        self._acknowledgements.add(task)
        task.add_done_callback(self._acknowledgements.discard)

    async def _acknowledge(self, ack_list: str) -> None:
        try:
            await self._transport.push(ack_list, self._transport.origin, ACK_LIST_EXPIRY)
        except Exception as error:
            # Unconfirmed, the announcer waits out its timeout and says so.
            logger.warning("signal bus: cannot confirm an eviction (%s)", error)
