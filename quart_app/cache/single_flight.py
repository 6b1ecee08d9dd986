"""Stampede protection: a missed key is computed once per process, and once across processes.

In a process, `SingleFlight` lets the first caller for a key compute and every concurrent
caller for the same key wait for that result. Across processes sharing Redis, the computing
caller first takes a short lease (SET NX PX); a process that finds the lease taken polls the
cache for the entry the holder will store, and runs the computation itself when the lease
goes away without one (the holder failed, or its answer was not cacheable) or runs out.
A caller that takes the lease looks once more first: the previous holder may have stored
the entry and let the lease go between this caller's miss and its lease.

Keys passed here carry the generation tokens of the entry (see `generations`): a caller never
joins a computation that started before an invalidation it has seen.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .client import CacheClient

logger = logging.getLogger("quart_app.cache")

T = TypeVar("T")


class _LeaderCancelled(Exception):
    """The caller computing a key was cancelled: a waiting caller takes over."""


class SingleFlight:
    """At most one computation per key at a time in this process."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, key: str, compute: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """`compute()`'s result and whether this caller ran it (False: it waited for another).

        A waiting caller gets the same result object, or the same exception, as the one that
        ran it; if that one is cancelled, a waiting caller runs `compute` instead.
        """
        while (running := self._running.get(key)) is not None:
            try:
                return await asyncio.shield(running), False
            except _LeaderCancelled:
                continue
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._running[key] = result
        try:
            value = await compute()
        except BaseException as error:
            result.set_exception(error if isinstance(error, Exception) else _LeaderCancelled())
            result.exception()  # retrieved: with nobody waiting, asyncio must not log it
            raise
        else:
            result.set_result(value)
            return value, True
        finally:
            del self._running[key]


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How long a lease holds, and how often a process that found it taken looks again."""

    seconds: float = 3.0
    poll_interval: float = 0.02


async def run_leased(
    client: CacheClient, key: str, policy: LeasePolicy,
    compute: Callable[[], Awaitable[T]], look: Callable[[], Awaitable[T | None]],
) -> tuple[T, bool]:
    """`compute()` under the lease `key`, or what `look()` finds while another process holds it.

    Returns the result and whether it was computed here. `look` returns the entry the holder
    stored, or None while there is none. The lease only coordinates: on any cache failure
    the computation simply runs here.
    """
    owner = secrets.token_hex(8)
    try:
        held = await client.add(key, owner, timeout=policy.seconds)
    except Exception as error:
        logger.warning("cache lease %r not taken (%s); computing without it", key, error)
        return await compute(), True
    if not held and client.is_usable:
        found = await _wait_for_holder(client, key, policy, look)
        if found is not None:
            return found, False
    try:
        if held and (found := await _look_once(key, look)) is not None:
            return found, False  # the previous holder stored it between our miss and our lease
        return await compute(), True
    finally:
        if held:
            await _release(client, key, owner)


async def _look_once(key: str, look: Callable[[], Awaitable[T | None]]) -> T | None:
    try:
        return await look()
    except Exception as error:
        logger.warning("cache lease %r: looking failed (%s); computing here", key, error)
        return None


async def _wait_for_holder(
    client: CacheClient, key: str, policy: LeasePolicy, look: Callable[[], Awaitable[T | None]],
) -> T | None:
    deadline = time.monotonic() + policy.seconds
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(policy.poll_interval)
            found = await look()
            if found is not None:
                return found
            if not await client.has(key):
                return await look()  # the holder may have stored it just before releasing
    except Exception as error:
        logger.warning("cache lease %r: polling failed (%s); computing here", key, error)
    return None


async def _release(client: CacheClient, key: str, owner: str) -> None:
    # Only our own lease: after running past it, the key may be another process's lease.
    try:
        await client.delete_if_equal(key, owner)
    except Exception as error:
        logger.warning("cache lease %r not released (%s); it expires by itself", key, error)
