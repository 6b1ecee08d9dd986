"""The memcached backend (CACHE_TYPE = "MemcachedCache"): aiocache's, made fit for a shared cache.

`CacheClient` hands it full keys and text values, as to the Redis backend. What memcached
cannot do, and what stands in for it here:
- No SCAN, so `clear()` cannot find the keys under a prefix. Every value records the
  prefix's *generation* (a random token under a key of its own) and `clear()` replaces the
  token: every older value stops matching at once, in every process, and memcached's LRU
  reclaims the space. The token is read in the same multi-get as the keys, so a read stays one
  round trip (a generation in the key would need a second one, or a per-process copy that
  another process's `clear()` leaves stale). If memcached evicts the token, the next writer
  makes a new one: that is a clear, never the return of older values. A write reads the
  token first (two round trips).
- No remaining lifetime on a read (the local tier needs it) and expiry in whole seconds:
  values record their expiry time, which expires them to the millisecond.
- No compare-and-delete script: a lease is released by a meta delete guarded by the CAS
  token of the value read (memcached 1.6), and counters are incremented by CAS.
- Keys are at most 250 bytes without spaces or control characters: a key outside that (a
  key/value API key, a long view name) is stored under its SHA-256.

aiomcache, under aiocache's backend, has no timeouts and spins on a socket the server closed
(aio-libs/aiomcache#502, open): here each call is bounded by CACHE_REDIS_TIMEOUT, an
end-of-file is a connection error, and a connection whose reply was not read to the end (a
timeout, a cancellation) is closed rather than handed to the next command.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aiomcache
from aiocache.backends.memcached import MemcachedBackend
from aiocache.serializers import NullSerializer
from aiomcache.client import acquire
from aiomcache.pool import Connection

# Errors that mean "memcached is unreachable" (EOFError: a reply cut off by a closed socket).
MEMCACHED_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, EOFError)

#: A memcached key: 1 to 250 bytes, no whitespace or control characters (its text protocol).
_PLAIN_KEY = re.compile(rb"[\x21-\x7e]{1,250}")
#: Wire keys starting with it are ours (hashed keys, generation tokens), never a plain key.
_RESERVED = b"#"
#: memcached reads an expiry longer than 30 days as a Unix time.
_RELATIVE_EXPIRY_LIMIT = 30 * 24 * 3600


def wire_key(key: str) -> bytes:
    """The memcached key of a full key: itself when memcached accepts it, else its digest."""
    raw = key.encode()
    if _PLAIN_KEY.fullmatch(raw) and not raw.startswith(_RESERVED):
        return raw
    return _RESERVED + b"h" + hashlib.sha256(raw).hexdigest().encode()


def generation_key(prefix: str) -> bytes:
    return _RESERVED + b"g" + hashlib.sha256(prefix.encode()).hexdigest().encode()


def _expiry(ttl: float | None) -> tuple[bytes, int]:
    """The expiry recorded in a value (Unix time, b"0": none) and memcached's own, which is
    at least a second later (it counts whole seconds) so the recorded one decides."""
    if ttl is None:
        return b"0", 0
    expires_at = time.time() + ttl
    seconds = math.ceil(ttl) + 1
    if seconds > _RELATIVE_EXPIRY_LIMIT:
        seconds = math.ceil(expires_at) + 1
    return f"{expires_at:.3f}".encode(), seconds


def _pack(generation: bytes, ttl: float | None, text: str) -> tuple[bytes, int]:
    recorded, exptime = _expiry(ttl)
    return generation + b"|" + recorded + b"|" + text.encode(), exptime


def unpack(raw: bytes | None, generation: bytes | None) -> tuple[str, float | None] | None:
    """The text and remaining seconds (None: no expiry) of a current value; None otherwise."""
    if raw is None or generation is None:
        return None
    recorded, separator, rest = raw.partition(b"|")
    if not separator or recorded != generation:
        return None
    expires, _, text = rest.partition(b"|")
    if expires == b"0":
        return text.decode(), None
    try:
        remaining = float(expires) - time.time()
    except ValueError:  # not a value of ours
        return None
    if remaining <= 0:
        return None
    return text.decode(), remaining


class _Client(aiomcache.Client):
    """aiomcache's client, minus its hang on a closed socket and its reuse of cut-off replies."""

    @asynccontextmanager
    async def _exchange(self, conn: Connection) -> AsyncIterator[None]:
        try:
            yield
        except BaseException as error:
            # The reply may be half read: the next command on this connection would read its
            # rest. Mark it failed, so the pool closes it instead of reusing it.
            if conn.reader.exception() is None:
                conn.reader.set_exception(ConnectionResetError("memcached command cut off"))
            conn.writer.close()
            if isinstance(error, aiomcache.ClientException) and conn.reader.at_eof():
                raise ConnectionResetError("memcached closed the connection") from error
            raise

    async def _execute_simple_command(self, conn: Connection, raw_command: bytes) -> bytes:
        async with self._exchange(conn):
            conn.writer.write(raw_command)
            await conn.writer.drain()
            # readuntil raises IncompleteReadError (an EOFError) on a closed socket, where
            # aiomcache's readline loop would spin.
            line = await conn.reader.readuntil(b"\r\n")
            return line[:-2]

    async def _multi_get(
        self, conn: Connection, *keys: bytes, with_cas: bool = True
    ) -> Any:
        async with self._exchange(conn):
            return await super()._multi_get(conn, *keys, with_cas=with_cas)  # type: ignore[call-overload]

    @acquire
    async def delete_unchanged(self, conn: Connection, key: bytes, cas: int) -> bool:
        """Delete `key` only if its CAS token is still `cas` (meta delete, memcached 1.6)."""
        self._validate_key(key)
        reply = await self._execute_simple_command(conn, b"md %s C%d\r\n" % (key, cas))
        if reply not in (b"HD", b"NF", b"EX"):
            raise aiomcache.ClientException("memcached meta delete failed", reply)
        return reply == b"HD"


class GenerationMemcachedBackend(MemcachedBackend):  # type: ignore[misc]
    """aiocache's memcached backend with a generation per prefix (see the module's docstring)."""

    NAME = "memcached"
    SHARED = True
    OUTAGE_ERRORS = MEMCACHED_OUTAGE_ERRORS

    def __init__(
        self, host: str, port: int, key_prefix: str, pool_size: int, timeout: float,
    ) -> None:
        super().__init__(endpoint=host, port=port, pool_size=pool_size,
                         serializer=NullSerializer(), timeout=0)
        # aiomcache's pool only grows to its minimum size: it is the real size.
        self.client = _Client(host, port, pool_size=pool_size, pool_minsize=pool_size)
        self.call_timeout = timeout
        self._generation_key = generation_key(key_prefix)

    # --- generations --------------------------------------------------------------------

    async def _generation(self) -> bytes:
        """The prefix's current token, made if there is none (first use, or evicted)."""
        while True:
            current = await self.client.get(self._generation_key)
            if current is not None:
                return current
            token = secrets.token_hex(8).encode()
            if await self.client.add(self._generation_key, token, 0):
                return token

    async def _read(self, keys: list[str]) -> list[tuple[str, float | None] | None]:
        """Each key's current text and remaining seconds, with the token, in one multi-get."""
        wires = [wire_key(key) for key in keys]
        unique = list(dict.fromkeys(wires))  # aiomcache refuses a key asked twice
        async with asyncio.timeout(self.call_timeout):
            generation, *values = await self.client.multi_get(self._generation_key, *unique)
        found = dict(zip(unique, values, strict=True))
        return [unpack(found[wire], generation) for wire in wires]

    async def _store(
        self, command: str, key: str, text: str, ttl: float | None,
        generation: bytes | None = None,
    ) -> bool:
        async with asyncio.timeout(self.call_timeout):
            data, exptime = _pack(generation or await self._generation(), ttl, text)
            try:
                return bool(await getattr(self.client, command)(wire_key(key), data, exptime))
            except aiomcache.ClientException:
                # SERVER_ERROR: larger than the server's item size (-I, 1 MiB by default) or
                # out of memory. Not stored, as a write that lost a race is not.
                return False

    # --- aiocache's primitives, as CacheClient calls them ---------------------------------

    async def _get(self, key: str, encoding: str = "utf-8", _conn: Any = None) -> str | None:
        [found] = await self._read([key])
        return None if found is None else found[0]

    async def _multi_get(
        self, keys: Iterable[str], encoding: str = "utf-8", _conn: Any = None
    ) -> list[str | None]:
        return [None if found is None else found[0] for found in await self._read(list(keys))]

    async def multi_get_with_ttl(self, keys: list[str]) -> list[tuple[str | None, float | None]]:
        """Each key's value and remaining seconds (None: no expiry), in one round trip."""
        return [(None, None) if found is None else found for found in await self._read(keys)]

    async def _exists(self, key: str, _conn: Any = None) -> bool:
        return await self._get(key) is not None

    async def _set(
        self, key: str, value: str, ttl: float | None = None, _cas_token: Any = None,
        _conn: Any = None,
    ) -> bool:
        return await self._store("set", key, value, ttl)

    async def _multi_set(
        self, pairs: Iterable[tuple[str, str]], ttl: float | None = None, _conn: Any = None
    ) -> bool:
        async with asyncio.timeout(self.call_timeout):
            generation = await self._generation()
        stored = [await self._store("set", key, value, ttl, generation) for key, value in pairs]
        return all(stored)

    async def _add(self, key: str, value: str, ttl: float | None = None, _conn: Any = None) -> bool:
        """Store if absent. A value of an older generation (cleared) or past its recorded
        expiry counts as absent: it is replaced by CAS, so two adders never both win."""
        if await self._store("add", key, value, ttl):
            return True
        async with asyncio.timeout(self.call_timeout):
            generation = await self._generation()
            wire = wire_key(key)
            raw, cas = await self.client.gets(wire)
            if raw is not None and unpack(raw, generation) is None and cas is not None:
                data, exptime = _pack(generation, ttl, value)
                if await self.client.cas(wire, data, cas, exptime):
                    return True
        raise ValueError(f"Key {key} already exists")

    async def _increment(self, key: str, delta: int, _conn: Any = None) -> int:
        """Add `delta` by compare-and-swap (memcached's INCR cannot see inside our values);
        a missing or cleared key counts as 0 and gets no expiry."""
        wire = wire_key(key)
        async with asyncio.timeout(self.call_timeout):
            while True:
                generation = await self._generation()
                raw, cas = await self.client.gets(wire)
                current = unpack(raw, generation)
                ttl: float | None = None
                if current is None:
                    number = delta
                else:
                    text, ttl = current
                    try:
                        number = int(text) + delta
                    except ValueError:
                        raise TypeError("Value is not an integer") from None
                data, exptime = _pack(generation, ttl, str(number))
                if raw is None:
                    done = await self.client.add(wire, data, exptime)
                else:
                    assert cas is not None
                    done = await self.client.cas(wire, data, cas, exptime)
                if done:
                    return number

    async def _delete(self, key: str, _conn: Any = None) -> int:
        async with asyncio.timeout(self.call_timeout):
            return 1 if await self.client.delete(wire_key(key)) else 0

    async def _delete_many(self, keys: Iterable[str]) -> int:
        return sum([await self._delete(key) for key in keys])

    async def _delete_if_equal(self, key: str, value: str) -> int:
        wire = wire_key(key)
        async with asyncio.timeout(self.call_timeout):
            generation, (raw, cas) = await self._generation(), await self.client.gets(wire)
            current = unpack(raw, generation)
            if current is None or current[0] != value or cas is None:
                return 0
            return 1 if await self.client.delete_unchanged(wire, cas) else 0

    async def _clear(
        self, namespace: str | None = None, _conn: Any = None, keep: tuple[str, ...] = ()
    ) -> bool:
        """A new generation: every value stored before is gone for every reader.

        memcached cannot keep some keys (`keep`, the counters) through it: they go too.
        """
        if not namespace:
            raise ValueError("refusing to clear without a key prefix")
        async with asyncio.timeout(self.call_timeout):
            return bool(await self.client.set(self._generation_key,
                                              secrets.token_hex(8).encode(), 0))

    async def ping(self) -> None:
        async with asyncio.timeout(self.call_timeout):
            await self.client.version()

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        await self.client.close()
