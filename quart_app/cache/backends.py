"""The cache backends: aiocache caches that store text under fully built keys.

`CacheClient` builds the keys (prefix included) and serialises the values, so each backend
here only moves strings. What aiocache's own classes get wrong for us is fixed here:
- memory: aiocache's backend keeps a timer per key, has no size bound and hands out live
  objects; `BoundedMemoryBackend` is an LRU of at most `max_entries` that expires lazily.
- Redis: `clear()` there runs KEYS or FLUSHDB; here it SCANs and UNLINKs only our prefix. The
  connection pool is sized explicitly (redis-py caps an unsized pool at 100) and blocks
  briefly when full rather than failing.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as redis
from aiocache.backends.redis import RedisCache
from aiocache.base import BaseCache
from aiocache.serializers import NullSerializer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# Errors that mean "the cache server is unreachable", as opposed to a bad command.
REDIS_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
    TimeoutError,
)

#: One immediate retry replaces a pooled connection that a Redis restart closed. Only on a
#: connection error: a timeout means the server is stalled, and sending the command again
#: would double the time an outage takes to be noticed (and a request waits).
RETRY_ON_A_FRESH_CONNECTION = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))

# aiocache wraps every call in asyncio.wait_for unless its timeout is 0; the memory backend
# never waits and Redis has socket timeouts of its own, so the wrapper would only cost time.
NO_CALL_TIMEOUT = 0


def _expiry(ttl: float | None) -> float:
    return math.inf if ttl is None else time.monotonic() + ttl


class BoundedMemoryBackend(BaseCache):  # type: ignore[misc]
    """An LRU dict of text values with lazy expiry: no timer per key, at most `max_entries`."""

    NAME = "bounded_memory"
    #: Whether other processes see the same entries, which errors mean "unreachable" and
    #: whether its server can be replaced by another (then it has `on_master_change`): the
    #: backend contract `CacheClient` reads (a custom backend without them: False, none, False).
    SHARED = False
    OUTAGE_ERRORS: tuple[type[BaseException], ...] = ()
    FAILS_OVER = False

    def __init__(self, max_entries: int, **kwargs: Any) -> None:
        super().__init__(serializer=NullSerializer(), timeout=NO_CALL_TIMEOUT, **kwargs)
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def _store(self, key: str, value: str, ttl: float | None) -> None:
        entries = self._entries
        entries[key] = (value, _expiry(ttl))
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    # Synchronous access, for the local tier, which never needs to wait.
    read = _live
    write = _store

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_all(self) -> None:
        self._entries.clear()

    async def _get(self, key: str, encoding: str = "utf-8", _conn: Any = None) -> str | None:
        return self._live(key)

    async def _gets(self, key: str, encoding: str = "utf-8", _conn: Any = None) -> str | None:
        return self._live(key)

    async def _multi_get(
        self, keys: Iterable[str], encoding: str = "utf-8", _conn: Any = None
    ) -> list[str | None]:
        return [self._live(key) for key in keys]

    async def _set(
        self, key: str, value: str, ttl: float | None = None, _cas_token: Any = None,
        _conn: Any = None,
    ) -> bool:
        if _cas_token is not None and self._live(key) != _cas_token:
            return False
        self._store(key, value, ttl)
        return True

    async def _multi_set(
        self, pairs: Iterable[tuple[str, str]], ttl: float | None = None, _conn: Any = None
    ) -> bool:
        for key, value in pairs:
            self._store(key, value, ttl)
        return True

    async def _add(self, key: str, value: str, ttl: float | None = None, _conn: Any = None) -> bool:
        if self._live(key) is not None:
            raise ValueError(f"Key {key} already exists")
        self._store(key, value, ttl)
        return True

    async def _exists(self, key: str, _conn: Any = None) -> bool:
        return self._live(key) is not None

    async def _increment(self, key: str, delta: int, _conn: Any = None) -> int:
        current = self._live(key)
        if current is None:
            self._store(key, str(delta), None)
            return delta
        try:
            number = int(current) + delta
        except ValueError:
            raise TypeError("Value is not an integer") from None
        self._entries[key] = (str(number), self._entries[key][1])
        return number

    async def _expire(self, key: str, ttl: float, _conn: Any = None) -> bool:
        value = self._live(key)
        if value is None:
            return False
        self._entries[key] = (value, _expiry(ttl or None))
        return True

    async def _delete(self, key: str, _conn: Any = None) -> int:
        return 0 if self._entries.pop(key, None) is None else 1

    async def _delete_if_equal(self, key: str, value: str) -> int:
        if self._live(key) != value:
            return 0
        del self._entries[key]
        return 1

    async def _clear(
        self, namespace: str | None = None, _conn: Any = None, keep: tuple[str, ...] = ()
    ) -> bool:
        if not namespace:
            raise ValueError("refusing to clear without a key prefix")
        for key in [key for key in self._entries
                    if key.startswith(namespace) and not key.startswith(keep)]:
            del self._entries[key]
        return True

    async def _delete_many(self, keys: Iterable[str]) -> int:
        return sum([self._entries.pop(key, None) is not None for key in keys])

    async def _raw(self, command: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the memory backend has no raw commands")

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        self._entries.clear()


class NullBackend(BaseCache):  # type: ignore[misc]
    """Flask-Caching's NullCache: stores nothing, every read is a miss."""

    NAME = "null"
    SHARED = False
    OUTAGE_ERRORS: tuple[type[BaseException], ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(serializer=NullSerializer(), timeout=NO_CALL_TIMEOUT, **kwargs)

    async def _get(self, key: str, encoding: str = "utf-8", _conn: Any = None) -> None:
        return None

    async def _multi_get(
        self, keys: Iterable[str], encoding: str = "utf-8", _conn: Any = None
    ) -> list[None]:
        return [None for _ in keys]

    async def _set(self, *args: Any, **kwargs: Any) -> bool:
        return True

    async def _multi_set(self, *args: Any, **kwargs: Any) -> bool:
        return True

    async def _add(self, *args: Any, **kwargs: Any) -> bool:
        return True

    async def _exists(self, key: str, _conn: Any = None) -> bool:
        return False

    async def _increment(self, key: str, delta: int, _conn: Any = None) -> int:
        return delta

    async def _expire(self, *args: Any, **kwargs: Any) -> bool:
        return False

    async def _delete(self, key: str, _conn: Any = None) -> int:
        return 0

    async def _delete_if_equal(self, key: str, value: str) -> int:
        return 0

    async def _clear(
        self, namespace: str | None = None, _conn: Any = None, keep: tuple[str, ...] = ()
    ) -> bool:
        return True

    async def _delete_many(self, keys: Iterable[str]) -> int:
        return 0

    async def _close(self, *args: Any, **kwargs: Any) -> None:
        return None


# Compare and delete in one step: between a GET and a DEL the key could change hands.
DELETE_IF_EQUAL_SCRIPT = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end "
    "return 0"
)


def pool_settings(
    pool_size: int, socket_timeout: float, connection_options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The cache's blocking pool and its timeouts; CACHE_OPTIONS (redis-py's names) add to
    them, and decoding stays ours to decide."""
    settings: dict[str, Any] = dict(
        max_connections=pool_size,
        timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        socket_timeout=socket_timeout,
        retry=RETRY_ON_A_FRESH_CONNECTION,
        decode_responses=False,
    )
    settings.update({name: value for name, value in (connection_options or {}).items()
                     if name != "decode_responses"})
    return settings


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class PrefixedRedisBackend(RedisCache):  # type: ignore[misc]
    """aiocache's Redis cache on a sized, blocking pool; `clear()` only touches our prefix."""

    SCAN_BATCH = 500
    SHARED = True
    OUTAGE_ERRORS = REDIS_OUTAGE_ERRORS

    def __init__(
        self, url: str, pool_size: int, socket_timeout: float,
        connection_options: Mapping[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(serializer=NullSerializer(), timeout=NO_CALL_TIMEOUT, **kwargs)
        settings = pool_settings(pool_size, socket_timeout, connection_options)
        pool = redis.BlockingConnectionPool.from_url(url, **settings)
        self.client = redis.Redis(connection_pool=pool)

    async def _set(
        self, key: str, value: str, ttl: float | None = None, _cas_token: Any = None,
        _conn: Any = None,
    ) -> Any:
        if _cas_token is not None:
            return await self._cas(key, value, _cas_token, ttl=ttl, _conn=_conn)
        if ttl is None:
            return await self.client.set(key, value)
        return await self.client.set(key, value, px=max(1, round(ttl * 1000)))

    async def _delete_if_equal(self, key: str, value: str) -> int:
        return int(await self.client.eval(DELETE_IF_EQUAL_SCRIPT, 1, key, value))

    async def _clear(
        self, namespace: str | None = None, _conn: Any = None, keep: tuple[str, ...] = ()
    ) -> bool:
        """UNLINK every key under `namespace`, except those under one of `keep`."""
        if not namespace:
            raise ValueError("refusing to clear without a key prefix")
        kept = tuple(prefix.encode() for prefix in keep)
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=_glob_escape(namespace) + "*",
                                               count=self.SCAN_BATCH):
            if kept and key.startswith(kept):
                continue
            batch.append(key)
            if len(batch) >= self.SCAN_BATCH:
                await self.client.unlink(*batch)
                batch.clear()
        if batch:
            await self.client.unlink(*batch)
        return True

    async def _delete_many(self, keys: list[str]) -> int:
        deleted = 0
        for start in range(0, len(keys), self.SCAN_BATCH):
            deleted += int(await self.client.unlink(*keys[start:start + self.SCAN_BATCH]))
        return deleted

    async def multi_get_with_ttl(self, keys: list[str]) -> list[tuple[str | None, float | None]]:
        """Each key's value and remaining seconds (None: no expiry), in one round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.pttl(key)
            replies = await pipe.execute()
        found: list[tuple[str | None, float | None]] = []
        for value, pttl in zip(replies[::2], replies[1::2], strict=True):
            if value is None:
                found.append((None, None))
            elif pttl == -1:
                found.append((value.decode(), None))
            else:  # -2: deleted between the two commands, so keep no copy
                found.append((value.decode(), max(pttl, 0) / 1000))
        return found

    async def ping(self) -> None:
        await self.client.ping()

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        await self.client.aclose(close_connection_pool=True)
