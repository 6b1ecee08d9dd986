"""`CacheClient`: Flask-Caching's API, async, over one aiocache backend.

It owns what must behave the same on every backend: the key prefix, the default timeout,
serialisation (values come back by value; `None` is a value, not a miss) and what happens
when the backend is unreachable (misses and dropped writes, logged once per outage, with a
short pause before the backend is tried again).

It calls the backends' storage primitives (`_get`, `_set`, ...) rather than aiocache's public
methods: those only add what this class already does (keys, serialisation, TTLs) plus an
environment lookup, a plugin loop and a debug log on every call, which made a memory `get`
cost 4 us instead of 0.4 us. aiocache is pinned, and the backends are our subclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from aiocache.base import BaseCache

from .backends import BoundedMemoryBackend, NullBackend, PrefixedRedisBackend
from .local_tier import LocalTier
from .sentinel import SentinelRedisBackend
from .serialization import ValueSerializer
from .write_guard import note_undelivered

logger = logging.getLogger("quart_app.cache")

T = TypeVar("T")

#: Seconds between two attempts of an invalidation that Redis did not take.
INVALIDATION_RETRY_PAUSE = 0.05
#: Deleted keys a client remembers across an outage, to delete again when Redis is back.
#: Past it, the namespaces that can be stale are cleared instead (see `_replay_invalidations`).
MAX_REMEMBERED_INVALIDATIONS = 10_000


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: Pass as `default=` to tell a miss from a cached `None`.
MISSING: Any = _Missing()


class CacheUnavailable(Exception):
    """The cache backend cannot be reached (raised only when CACHE_IGNORE_ERRORS is false)."""


@dataclass(frozen=True, slots=True)
class CacheSettings:
    cache_type: str = "SimpleCache"
    default_timeout: int = 300
    key_prefix: str = "quart_app:"
    threshold: int = 500
    ignore_errors: bool = True
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_pool_size: int = 32
    redis_timeout: float = 1.0
    retry_interval: float = 2.0
    local: bool = False
    local_threshold: int = 1000
    local_timeout: float = 30.0
    #: CACHE_OPTIONS other than Flask-Caching's backend arguments: redis-py connection options.
    redis_options: tuple[tuple[str, Any], ...] = ()
    #: RedisSentinelCache: the sentinels, the master's name, the passwords and the database.
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = "mymaster"
    sentinel_password: str | None = None
    redis_password: str | None = None
    redis_db: int = 0
    #: RedisClusterCache: CACHE_REDIS_CLUSTER's nodes, as (host, port).
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    #: CACHE_MEMCACHED_SERVERS' one server, as (host, port).
    memcached_server: tuple[str, int] = ("127.0.0.1", 11211)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CacheSettings:
        return cls(
            cache_type=config["CACHE_TYPE"],
            default_timeout=config["CACHE_DEFAULT_TIMEOUT"],
            key_prefix=config["CACHE_KEY_PREFIX"],
            threshold=config["CACHE_THRESHOLD"],
            ignore_errors=config["CACHE_IGNORE_ERRORS"],
            redis_url=config["CACHE_REDIS_URL"],
            redis_pool_size=config["CACHE_REDIS_POOL_SIZE"],
            redis_timeout=config["CACHE_REDIS_TIMEOUT"],
            retry_interval=config["CACHE_RETRY_INTERVAL"],
            local=config["CACHE_LOCAL"],
            local_threshold=config["CACHE_LOCAL_THRESHOLD"],
            local_timeout=config["CACHE_LOCAL_TIMEOUT"],
            redis_options=tuple(
                (name, value) for name, value in (config.get("CACHE_OPTIONS") or {}).items()
                if name not in ("default_timeout", "key_prefix", "threshold")
            ),
            sentinels=tuple(config["CACHE_REDIS_SENTINELS"]),
            sentinel_master=config["CACHE_REDIS_SENTINEL_MASTER"],
            sentinel_password=config["CACHE_REDIS_SENTINEL_PASSWORD"],
            redis_password=config["CACHE_REDIS_PASSWORD"],
            redis_db=config["CACHE_REDIS_DB"] or 0,
            memcached_server=memcached_address(config["CACHE_MEMCACHED_SERVERS"]),
            cluster_nodes=tuple(config.get("CACHE_REDIS_CLUSTER") or ()),
        )


def memcached_address(servers: list[str]) -> tuple[str, int]:
    """The (host, port) of CACHE_MEMCACHED_SERVERS' one "host:port" (validated by config)."""
    host, _, port = servers[0].rpartition(":")
    return host.strip("[]"), int(port)


def make_backend(settings: CacheSettings) -> BaseCache:
    if settings.cache_type == "RedisCache":
        return PrefixedRedisBackend(
            settings.redis_url, settings.redis_pool_size, settings.redis_timeout,
            connection_options=dict(settings.redis_options),
        )
    if settings.cache_type == "RedisSentinelCache":
        return SentinelRedisBackend(
            settings.sentinels, settings.sentinel_master, db=settings.redis_db,
            password=settings.redis_password, sentinel_password=settings.sentinel_password,
            pool_size=settings.redis_pool_size, socket_timeout=settings.redis_timeout,
            connection_options=dict(settings.redis_options),
        )
    if settings.cache_type == "RedisClusterCache":
        from .cluster import ClusterRedisBackend

        return ClusterRedisBackend(
            settings.cluster_nodes, password=settings.redis_password,
            pool_size=settings.redis_pool_size, socket_timeout=settings.redis_timeout,
            connection_options=dict(settings.redis_options),
        )
    if settings.cache_type == "MemcachedCache":
        # Imported here: aiomcache is only loaded by apps that use memcached.
        from .memcached import GenerationMemcachedBackend

        host, port = settings.memcached_server
        return GenerationMemcachedBackend(host, port, settings.key_prefix,
                                          settings.redis_pool_size, settings.redis_timeout)
    if settings.cache_type == "NullCache":
        return NullBackend()
    return BoundedMemoryBackend(settings.threshold)


class CacheClient:
    """One app's cache. Timeouts are seconds; `None` means the default, 0 means never expire."""

    def __init__(self, settings: CacheSettings, backend: BaseCache | None = None) -> None:
        self.settings = settings
        self.backend = backend if backend is not None else make_backend(settings)
        self._serializer = ValueSerializer()
        self._prefix = settings.key_prefix
        self._outage_errors: tuple[type[BaseException], ...] = getattr(
            self.backend, "OUTAGE_ERRORS", ())
        self._down_since: float | None = None
        self._retry_at = 0.0
        #: Keys whose deletion Redis did not take: deleted again once it answers.
        self._undelivered: set[str] = set()
        #: "all": a dropped `clear()`; "stale": too many dropped deletes to remember;
        #: "failover": deletions the old master took may be lost (`_master_changed`).
        self._undelivered_clear: Literal["all", "stale", "failover"] | None = None
        self._preserved: tuple[str, ...] = ()
        self._forgetting = asyncio.Lock()
        self._suspended = False
        self._probe: asyncio.Task[None] | None = None
        #: Failovers seen: a call during which one happened may have read the new master
        #: before this process forgot what it may have lost (see `_master_changed`).
        self._failovers = 0
        if isinstance(self.backend, PrefixedRedisBackend):
            self.backend.on_master_change(self._master_changed)
        #: CACHE_LOCAL's in-process copies, in front of Redis (see `local_tier`).
        self.local: LocalTier | None = None
        if settings.local and self.is_shared:
            self.local = LocalTier(self._prefix, settings.local_threshold, settings.local_timeout)

    # --- Flask-Caching's API ------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        full_key = self._key(key)
        tier = self._serving_tier()
        if tier is not None and tier.holds(full_key):
            text = tier.lookup(full_key)
            if text is None:
                [text] = await self._read_through(tier, [full_key])
        else:
            text = await self._call(self.backend._get, None, full_key)
        return default if text is None else self._serializer.loads(text)

    async def set(self, key: str, value: Any, timeout: int | float | None = None) -> bool:
        text = self._serializer.dumps(value)
        full_key, ttl, epoch = self._key(key), self._ttl(timeout), self._epoch()
        result = bool(await self._call(self.backend._set, False, full_key, text, ttl=ttl))
        self._copy_written([(full_key, text)], ttl, result, epoch)
        return result

    async def add(self, key: str, value: Any, timeout: int | float | None = None) -> bool:
        """Store only if `key` is absent; False when it was already there."""
        text = self._serializer.dumps(value)
        full_key, ttl, epoch = self._key(key), self._ttl(timeout), self._epoch()
        try:
            added = bool(await self._call(self.backend._add, False, full_key, text, ttl=ttl))
        except ValueError:
            return False
        self._copy_written([(full_key, text)], ttl, added, epoch)
        return added

    async def delete(self, key: str) -> bool:
        full_key = self._key(key)
        deleted = bool(await self._invalidate(self.backend._delete, 0, [full_key], full_key))
        await self._evict_everywhere([full_key])
        return deleted

    async def has(self, key: str) -> bool:
        return bool(await self._call(self.backend._exists, False, self._key(key)))

    async def delete_if_equal(self, key: str, value: Any) -> bool:
        """Delete `key` only while it holds `value` (a lease's owner releasing it).

        Not an invalidation: when it is dropped during an outage nothing is cleared later.
        """
        text = self._serializer.dumps(value)
        full_key = self._key(key)
        deleted = bool(await self._call(self.backend._delete_if_equal, 0, full_key, text))
        await self._evict_everywhere([full_key])
        return deleted

    async def clear(self) -> bool:
        """Remove every key under this app's prefix, and nothing else."""
        cleared = bool(await self._invalidate(self.backend._clear, False, None, self._prefix))
        await self._evict_everywhere(None)
        return cleared

    async def get_many(self, *keys: str) -> list[Any]:
        """Values in the order of `keys`; a miss is `None`, as in Flask-Caching."""
        full_keys = [self._key(key) for key in keys]
        tier = self._serving_tier()
        texts: list[str | None]
        if tier is None:
            texts = await self._call(self.backend._multi_get, [None] * len(keys), full_keys)
        else:
            texts = [tier.lookup(key) if tier.holds(key) else None for key in full_keys]
            unread = [index for index, text in enumerate(texts) if text is None]
            if unread:
                fetched = await self._read_through(tier, [full_keys[index] for index in unread])
                for index, text in zip(unread, fetched, strict=True):
                    texts[index] = text
        return [None if text is None else self._serializer.loads(text) for text in texts]

    async def get_dict(self, *keys: str) -> dict[str, Any]:
        return dict(zip(keys, await self.get_many(*keys), strict=True))

    async def set_many(
        self, mapping: Mapping[str, Any], timeout: int | float | None = None
    ) -> list[str]:
        """Store every pair; returns the keys that were stored (all, or none on an outage)."""
        pairs = [(self._key(key), self._serializer.dumps(value)) for key, value in mapping.items()]
        if not pairs:
            return []
        ttl, epoch = self._ttl(timeout), self._epoch()
        stored = bool(await self._call(self.backend._multi_set, False, pairs, ttl=ttl))
        self._copy_written(pairs, ttl, stored, epoch)
        return list(mapping) if stored else []

    async def delete_many(self, *keys: str) -> list[str]:
        """Delete each key; returns the keys that existed and were removed."""
        deleted = []
        for key in keys:
            if await self.delete(key):
                deleted.append(key)
        return deleted

    async def inc(self, key: str, delta: int = 1) -> int | None:
        """Add `delta` to an integer value (a missing key counts as 0); None on an outage.

        A dropped increment is a lost count, not a stale entry: counters are never cleared
        after an outage (see `preserve`).
        """
        full_key = self._key(key)
        result = await self._call(self.backend._increment, None, full_key, delta)
        await self._evict_everywhere([full_key])
        return None if result is None else int(result)

    async def dec(self, key: str, delta: int = 1) -> int | None:
        return await self.inc(key, -delta)

    # --- health and lifecycle -----------------------------------------------------------

    @property
    def is_down(self) -> bool:
        return self._down_since is not None

    async def ping(self) -> None:
        """Raise CacheUnavailable if the backend cannot be reached right now."""
        if not self.is_shared:
            return
        try:
            await self.backend.ping()
            if self._invalidations_lost:
                await self._replay_invalidations()
        except self._outage_errors as error:
            self._note_outage(error)
            name = getattr(self.backend, "NAME", "cache backend")
            raise CacheUnavailable(f"{name} unreachable: {error}") from None
        self._note_recovery()

    def preserve(self, namespace: str) -> None:
        """Keep keys under `namespace` (after the prefix) when the cache forgets what may be
        stale: counters, which an outage can only leave short, never stale."""
        self._preserved = (*self._preserved, self._prefix + namespace)

    def suspend(self) -> None:
        """Serve nothing from the cache (reads miss, writes are dropped) until `resume`.

        For a per-process cache whose invalidations arrive over the signal bus: while the
        bus is down an invalidation may be missed, so nothing cached may be trusted.
        """
        self._suspended = True

    async def resume(self) -> None:
        """Forget everything under the prefix that may be stale, then serve again."""
        await self.backend._clear(self._prefix, keep=self._preserved)
        self._suspended = False

    @property
    def is_suspended(self) -> bool:
        return self._suspended

    @property
    def is_usable(self) -> bool:
        """False while calls fall back (an outage or its retry pause, or suspended)."""
        return self._down_since is None and not self._suspended

    @property
    def is_shared(self) -> bool:
        """True when other processes see the same entries (Redis, memcached)."""
        return bool(getattr(self.backend, "SHARED", False))

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        try:
            await self.backend.close()
        except self._outage_errors as error:
            logger.warning("cache close failed: %s", error)

    # --- the local tier -------------------------------------------------------------------

    def _serving_tier(self) -> LocalTier | None:
        """The local tier, if it may serve now (never while Redis is failing)."""
        tier = self.local
        if tier is None or not tier.serving or self._down_since is not None:
            return None
        return tier

    async def _read_through(self, tier: LocalTier, full_keys: list[str]) -> list[str | None]:
        """Read from the shared backend, and copy what the tier holds."""
        epoch = tier.epoch
        nothing: list[tuple[str | None, float | None]] = [(None, None)] * len(full_keys)
        found = await self._call(self.backend.multi_get_with_ttl, nothing, full_keys)
        for key, (text, ttl) in zip(full_keys, found, strict=True):
            if text is not None and tier.holds(key):
                tier.keep(key, text, ttl, epoch)
        return [text for text, _ in found]

    def _epoch(self) -> int:
        return -1 if self.local is None else self.local.epoch

    def _copy_written(
        self, pairs: list[tuple[str, str]], ttl: float | None, stored: bool, epoch: int
    ) -> None:
        """Copy what this process wrote, unless an eviction came in meanwhile (`epoch` is
        from before the write). The decorators write entries, which their tokens validate,
        and add new tokens: another process cannot hold an older copy that needs evicting."""
        tier = self._serving_tier()
        if tier is None or not stored:
            return
        for key, text in pairs:
            if tier.holds(key):
                tier.keep(key, text, ttl, epoch)

    async def _evict_everywhere(self, full_keys: list[str] | None) -> None:
        """After a deletion: drop the copies here and in every other process (None: all)."""
        tier = self.local
        if tier is None:
            return
        if full_keys is not None:
            full_keys = [key for key in full_keys if tier.holds(key)]
            if not full_keys:
                return
        tier.evict(full_keys)
        await tier.announce(full_keys)

    # --- internals ----------------------------------------------------------------------

    def _key(self, key: str) -> str:
        if not isinstance(key, str):
            raise TypeError(f"cache keys are strings, not {type(key).__name__}")
        return self._prefix + key

    def _ttl(self, timeout: int | float | None) -> int | float | None:
        if timeout is None:
            timeout = self.settings.default_timeout
        if timeout < 0:
            raise ValueError("a cache timeout cannot be negative")
        return None if timeout == 0 else timeout

    async def _call(
        self, operation: Callable[..., Awaitable[T]], fallback: T, *args: Any, **kwargs: Any,
    ) -> T:
        """Run one backend call; on an outage, `fallback` (or CacheUnavailable)."""
        if self._suspended:
            return fallback
        if not self._outage_errors:
            return await operation(*args, **kwargs)
        if self._down_since is not None and time.monotonic() < self._retry_at:
            return self._outage_result(fallback, None)
        failovers = self._failovers
        try:
            if self._invalidations_lost:
                await self._replay_invalidations()
            result = await operation(*args, **kwargs)
        except self._outage_errors as error:
            self._note_outage(error)
            return self._outage_result(fallback, error)
        self._note_recovery()
        if self._failovers != failovers:
            return self._outage_result(fallback, ConnectionError("the Redis master changed"))
        return result

    async def _invalidate(
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
        if self._suspended:
            return fallback
        if not self._outage_errors:
            return await operation(*args)
        deadline = time.monotonic() + self.settings.redis_timeout
        while True:
            try:
                if self._invalidations_lost:
                    await self._replay_invalidations()
                result = await operation(*args)
            except self._outage_errors as error:
                self._note_outage(error)
                if time.monotonic() + INVALIDATION_RETRY_PAUSE < deadline:
                    await asyncio.sleep(INVALIDATION_RETRY_PAUSE)
                    continue
                self._remember_undelivered(keys)
                note_undelivered(self._prefix if keys is None else keys[0])
                return self._outage_result(fallback, error)
            self._note_recovery()
            return result

    def _master_changed(self) -> None:
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

    def _remember_undelivered(self, keys: list[str] | None) -> None:
        if keys is None:
            self._undelivered_clear = "all"
        elif len(self._undelivered) + len(keys) > MAX_REMEMBERED_INVALIDATIONS:
            self._undelivered_clear = self._undelivered_clear or "stale"
            self._undelivered.clear()
        elif self._undelivered_clear is None:
            self._undelivered.update(keys)
        self._start_recovery_probe()

    @property
    def _invalidations_lost(self) -> bool:
        return bool(self._undelivered) or self._undelivered_clear is not None

    def _outage_result(self, fallback: T, error: BaseException | None) -> T:
        if self.settings.ignore_errors:
            return fallback
        raise CacheUnavailable(f"cache backend unreachable: {error or 'in retry pause'}")

    def _note_outage(self, error: BaseException) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            logger.warning(
                "cache backend unreachable (%s); treating reads as misses and dropping writes "
                "until it answers again", error,
            )
        self._retry_at = now + self.settings.retry_interval

    def _start_recovery_probe(self) -> None:
        """Deliver dropped deletions as soon as the backend is back, not at this process's
        next call: other processes read the same Redis and would serve what they missed.
        So a task pings every `retry_interval` and delivers them.
        """
        if self._probe is not None and not self._probe.done():
            return
        self._probe = asyncio.get_running_loop().create_task(self._probe_until_recovered())

    async def _probe_until_recovered(self) -> None:
        while self._invalidations_lost:
            await asyncio.sleep(self.settings.retry_interval)
            try:
                await self.ping()
            except CacheUnavailable:
                continue

    async def _replay_invalidations(self) -> None:
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
                keep = () if clear == "all" else self._preserved
                await self.backend._clear(self._prefix, keep=keep)
            else:
                await self.backend._delete_many(keys)
            self._undelivered.difference_update(keys)
            if self._undelivered_clear == clear:
                self._undelivered_clear = None
        await self._evict_everywhere(None if clear is not None else keys)
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

    def _note_recovery(self) -> None:
        if self._down_since is not None:
            logger.warning(
                "cache backend reachable again after %.1f s", time.monotonic() - self._down_since
            )
            self._down_since = None
