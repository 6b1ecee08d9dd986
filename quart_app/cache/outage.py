"""What a cache client does while its backend is unreachable, and once it answers again.

A shared backend (Redis, Sentinel, memcached) can fail while the app serves. `Outage` is the
state machine of one client across such a failure, kept out of `CacheClient` so that the API
there reads as Flask-Caching's and this reads as one story:
- a call that fails is a miss or a dropped write (or `CacheUnavailable` when
  CACHE_IGNORE_ERRORS is false), logged once per outage; calls then skip the backend for
  CACHE_RETRY_INTERVAL before trying it again;
- a deletion is never skipped: it is retried for up to CACHE_REDIS_TIMEOUT, and one the
  backend still did not take is remembered (`remember_undelivered`), told to the request
  (`write_guard`) and made as soon as the backend answers: by a probe task, not at this
  process's next call, because other processes read the same backend;
- a failover (a backend that declares FAILS_OVER says when its master changed) counts as
  deletions lost: what may be stale is forgotten before the next read.
Backends without OUTAGE_ERRORS (memory, null) have no `Outage`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

from aiocache.base import BaseCache

from ..errors import error_text
from .settings import CacheSettings
from .write_guard import note_undelivered

logger = logging.getLogger("quart_app.cache")

T = TypeVar("T")

#: Seconds between two attempts of an invalidation that Redis did not take.
INVALIDATION_RETRY_PAUSE = 0.05
#: Deleted keys a client remembers across an outage, to delete again when Redis is back.
#: Past it, the namespaces that can be stale are cleared instead (see `replay_invalidations`).
MAX_REMEMBERED_INVALIDATIONS = 10_000

#: Drops the local tiers' copies of keys the replay deleted (None: all of them).
Evictor = Callable[[list[str] | None], Awaitable[None]]


class CacheUnavailable(Exception):
    """The cache backend cannot be reached (raised only when CACHE_IGNORE_ERRORS is false)."""


class Outage:
    """One client's view of its backend's health: down or not, and what it owes it."""

    def __init__(
        self, backend: BaseCache, settings: CacheSettings, preserved: Sequence[str],
        evict: Evictor,
    ) -> None:
        self.backend = backend
        #: The errors that mean "unreachable", as the backend declares them.
        self.errors: tuple[type[BaseException], ...] = backend.OUTAGE_ERRORS
        self._settings = settings
        self._prefix = settings.key_prefix
        #: The client's preserved namespaces (a live view: `CacheClient.preserve` adds to it).
        self._preserved = preserved
        self._evict = evict
        self.down_since: float | None = None
        self._retry_at = 0.0
        #: Keys whose deletion Redis did not take: deleted again once it answers.
        self._undelivered: set[str] = set()
        #: "all": a dropped `clear()`; "stale": too many dropped deletes to remember;
        #: "failover": deletions the old master took may be lost (`master_changed`).
        self._undelivered_clear: Literal["all", "stale", "failover"] | None = None
        self._forgetting = asyncio.Lock()
        self._probe: asyncio.Task[None] | None = None
        #: Failovers seen: a call during which one happened may have read the new master
        #: before this process forgot what it may have lost (see `master_changed`).
        self._failovers = 0

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    # --- calls through it ---------------------------------------------------------------

    async def call(
        self, operation: Callable[..., Awaitable[T]], fallback: T, *args: Any, **kwargs: Any,
    ) -> T:
        """Run one backend call; on an outage, `fallback` (or CacheUnavailable)."""
        if self.down_since is not None and time.monotonic() < self._retry_at:
            return self._outage_result(fallback, None)
        failovers = self._failovers
        try:
            if self.invalidations_lost:
                await self.replay_invalidations()
            result = await operation(*args, **kwargs)
        except self.errors as error:
            self._note_outage(error)
            return self._outage_result(fallback, error)
        self._note_recovery()
        if self._failovers != failovers:
            return self._outage_result(fallback, ConnectionError("the Redis master changed"))
        return result

    async def invalidate(
        self, operation: Callable[..., Awaitable[T]], fallback: T, keys: list[str] | None,
        *args: Any,
    ) -> T:
        """Run a deletion (of `keys`; None: the whole prefix) so that readers see it.

        Another process may read Redis while this one is in its retry pause, so a deletion
        never skips Redis for the pause: it is tried, and tried again for up to
        CACHE_REDIS_TIMEOUT (a restart's refused connections, a blip). If Redis still has
        not taken it, the keys are deleted again as soon as it answers, and the request
        that asked is told (`write_guard`): its write must not be acknowledged as fresh.
        """
        deadline = time.monotonic() + self._settings.redis_timeout
        while True:
            try:
                if self.invalidations_lost:
                    await self.replay_invalidations()
                result = await operation(*args)
            except self.errors as error:
                self._note_outage(error)
                if time.monotonic() + INVALIDATION_RETRY_PAUSE < deadline:
                    await asyncio.sleep(INVALIDATION_RETRY_PAUSE)
                    continue
                self.remember_undelivered(keys)
                note_undelivered(self._prefix if keys is None else keys[0])
                return self._outage_result(fallback, error)
            self._note_recovery()
            return result

    async def ping(self) -> None:
        """Raise CacheUnavailable if the backend cannot be reached right now; make what an
        outage left owing when it can."""
        try:
            await self.backend.ping()
            if self.invalidations_lost:
                await self.replay_invalidations()
        except self.errors as error:
            self._note_outage(error)
            name = getattr(self.backend, "NAME", "cache backend")
            raise CacheUnavailable(f"{name} unreachable: {error}") from None
        self._note_recovery()

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe

    # --- what it owes -------------------------------------------------------------------

    def master_changed(self) -> None:
        """A failover: the backend now talks to a promoted replica. Replication is
        asynchronous, so deletions the old master acknowledged may be missing there: forget
        what may be stale (everything but the preserved counters) before the next read, as
        after deletions dropped in an outage. Called before any command reaches the new
        master."""
        self._failovers += 1
        if self._undelivered_clear is None:
            self._undelivered_clear = "failover"
            self._undelivered.clear()
        self._start_recovery_probe()

    def remember_undelivered(self, keys: list[str] | None) -> None:
        if keys is None:
            self._undelivered_clear = "all"
        elif len(self._undelivered) + len(keys) > MAX_REMEMBERED_INVALIDATIONS:
            self._undelivered_clear = self._undelivered_clear or "stale"
            self._undelivered.clear()
        elif self._undelivered_clear is None:
            self._undelivered.update(keys)
        self._start_recovery_probe()

    @property
    def invalidations_lost(self) -> bool:
        return bool(self._undelivered) or self._undelivered_clear is not None

    async def replay_invalidations(self) -> None:
        """Before the first use after an outage that dropped deletions: make them now.

        The exact keys, so nothing else is lost (counters, entries nobody invalidated);
        a dropped `clear()` clears; past MAX_REMEMBERED_INVALIDATIONS, everything but the
        preserved namespaces goes. Once, however many requests arrive meanwhile: they
        wait for this instead of each deleting again and emptying every local tier.
        """
        async with self._forgetting:
            keys, clear = sorted(self._undelivered), self._undelivered_clear
            if not keys and clear is None:
                return
            if clear is not None:
                keep = () if clear == "all" else tuple(self._preserved)
                await self.backend._clear(self._prefix, keep=keep)
            else:
                await self.backend._delete_many(keys)
            self._undelivered.difference_update(keys)
            if self._undelivered_clear == clear:
                self._undelivered_clear = None
        await self._evict(None if clear is not None else keys)
        if clear == "failover":
            logger.warning("cache cleared under %r (counters kept): the Redis master changed, "
                           "and deletions the old one took may not have reached the new one",
                           self._prefix)
        elif clear is not None:
            logger.warning("cache cleared under %r (%s): deletions were dropped while it was "
                           "unreachable", self._prefix,
                           "a clear() was dropped" if clear == "all"
                           else "too many to remember; counters kept")
        else:
            logger.warning("cache: %d deletions dropped while it was unreachable are made "
                           "now", len(keys))

    # --- internals ----------------------------------------------------------------------

    def _outage_result(self, fallback: T, error: BaseException | None) -> T:
        if self._settings.ignore_errors:
            return fallback
        raise CacheUnavailable("cache backend unreachable: "
                               + (error_text(error) if error else "in retry pause"))

    def _note_outage(self, error: BaseException) -> None:
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            logger.warning(
                "cache backend unreachable (%s); treating reads as misses and dropping writes "
                "until it answers again", error_text(error),
            )
        self._retry_at = now + self._settings.retry_interval

    def _note_recovery(self) -> None:
        if self.down_since is not None:
            logger.warning(
                "cache backend reachable again after %.1f s", time.monotonic() - self.down_since
            )
            self.down_since = None

    def _start_recovery_probe(self) -> None:
        """Deliver dropped deletions as soon as the backend is back, not at this process's
        next call: other processes read the same Redis and would serve what they missed.
        So a task pings every `retry_interval` and delivers them.
        """
        if self._probe is not None and not self._probe.done():
            return
        self._probe = asyncio.get_running_loop().create_task(self._probe_until_recovered())

    async def _probe_until_recovered(self) -> None:
        while self.invalidations_lost:
            await asyncio.sleep(self._settings.retry_interval)
            try:
                await self.ping()
            except CacheUnavailable:
                continue
