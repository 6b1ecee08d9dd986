"""The local tier (CACHE_LOCAL): a small in-process copy of the decorators' reads from Redis.

With the Redis backend, every read of a cached view or memoized function costs a round trip
for its entry and the generation tokens that validate it (`generations`). The local tier
keeps copies of those in a bounded LRU in each process, so a repeated read costs none.

What keeps it correct across processes:
- Only the decorators' keys are held (`view:...` and `memo:...`). An entry is served only
  if the tokens it records equal the current ones, so a copied entry never needs evicting;
  a token changes only by deletion, and a deletion evicts the token from every process's
  tier before the deleting call returns (`announce`, over the signal bus, acknowledged by
  each process). An insert's response is sent after its invalidation, so whichever process
  the next read reaches, it sees the insert. The key/value API's own keys (counters,
  leases, the seed's keys) always go to Redis.
- A copy read from Redis is kept only if no eviction arrived while it was being read
  (`epoch`): a reply sent before a deletion could otherwise be stored after its eviction.
- Nothing is served while the bus is down (an eviction could be missed), and the tier is
  emptied before it serves again. A copy lives no longer than its key in Redis and at most
  CACHE_LOCAL_TIMEOUT seconds, which also bounds a copy in a process that failed to
  acknowledge an eviction in time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .backends import BoundedMemoryBackend

logger = logging.getLogger("quart_app.cache")

#: The namespaces of the keys the decorators write (see `keys.view_keys`, `keys.memo_keys`).
TIERED_NAMESPACES = ("view:", "memo:")

#: Tells every other process to evict keys (None: everything under a prefix) and waits for
#: them to confirm; installed by the signal bus.
Announcer = Callable[[str, Sequence[str] | None], Awaitable[None]]


class LocalTier:
    def __init__(self, prefix: str, max_entries: int, max_age: float) -> None:
        self.prefix = prefix
        self.max_age = max_age
        #: Bumped by every eviction; a copy read across a change is not kept.
        self.epoch = 0
        self._namespaces = tuple(prefix + namespace for namespace in TIERED_NAMESPACES)
        self._copies = BoundedMemoryBackend(max_entries)
        self._serving = False  # until the bus is subscribed: a remote eviction could be missed
        self._announcer: Announcer | None = None
        self.hits = 0
        self.misses = 0
        self.evictions_received = 0

    # --- reads ------------------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        return self._serving

    def holds(self, key: str) -> bool:
        """Whether `key` (prefixed) is one the tier copies."""
        return key.startswith(self._namespaces)

    def lookup(self, key: str) -> str | None:
        text = self._copies.read(key)
        if text is None:
            self.misses += 1
        else:
            self.hits += 1
        return text

    def keep(self, key: str, text: str, ttl: float | None, epoch: int) -> None:
        """Copy what Redis returned for `key` (`ttl`: its remaining seconds, None: none).

        `epoch` is `self.epoch` from before the read was sent: if anything was evicted since,
        the copy may predate that eviction and is dropped.
        """
        if not self._serving or epoch != self.epoch:
            return
        lifetime = self.max_age if ttl is None else min(ttl, self.max_age)
        if lifetime > 0:
            self._copies.write(key, text, lifetime)

    def keep_read(
        self, keys: Sequence[str], found: Sequence[tuple[str | None, float | None]], epoch: int
    ) -> list[str | None]:
        """Copy the held keys of a read from Redis (`found`: each key's text and remaining
        seconds, `epoch` from before the read); returns the texts."""
        for key, (text, ttl) in zip(keys, found, strict=True):
            if text is not None and self.holds(key):
                self.keep(key, text, ttl, epoch)
        return [text for text, _ in found]

    def keep_written(
        self, pairs: Sequence[tuple[str, str]], ttl: float | None, epoch: int
    ) -> None:
        """Copy what this process wrote, unless an eviction came in meanwhile (`epoch` is
        from before the write). The decorators write entries, which their tokens validate,
        and add new tokens: another process cannot hold an older copy that needs evicting."""
        for key, text in pairs:
            if self.holds(key):
                self.keep(key, text, ttl, epoch)

    # --- invalidation -----------------------------------------------------------------------

    async def evict_everywhere(self, keys: Sequence[str] | None) -> None:
        """After a deletion: drop the copies here and in every other process (None: all)."""
        if keys is not None:
            keys = [key for key in keys if self.holds(key)]
            if not keys:
                return
        self.evict(keys)
        await self.announce(keys)

    def evict(self, keys: Sequence[str] | None) -> None:
        """Drop these copies (None: all of them)."""
        self.epoch += 1
        if keys is None:
            self._copies.forget_all()
        else:
            for key in keys:
                self._copies.forget(key)

    def evict_remote(self, prefix: str, keys: Sequence[str] | None) -> None:
        """Another process's eviction, received over the bus."""
        if prefix != self.prefix:
            return
        self.evictions_received += 1
        self.evict(keys)

    def attach(self, announcer: Announcer) -> None:
        self._announcer = announcer

    async def announce(self, keys: Sequence[str] | None) -> None:
        """Make every other process evict `keys` (None: all), waiting for them to confirm."""
        if self._announcer is not None:
            await self._announcer(self.prefix, keys)

    # --- the bus's view of it -----------------------------------------------------------------

    def suspend(self) -> None:
        """Serve nothing and keep nothing: evictions from other processes may be missed."""
        self._serving = False
        self.epoch += 1

    async def resume(self) -> None:
        """Forget every copy (one may have missed an eviction), then serve again."""
        self.evict(None)
        self._serving = True

    def stats(self) -> dict[str, Any]:
        return {"serving": self._serving, "entries": len(self._copies), "hits": self.hits,
                "misses": self.misses, "evictions_received": self.evictions_received}
