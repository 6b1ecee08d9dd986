"""Redis Sentinel: the cache (`RedisSentinelCache`) and the signal bus on whichever server the
sentinels name master, followed across failovers without a restart.

redis-py's `Sentinel.master_for` asks the sentinels for the master's address each time it
makes a connection, so once a failover has promoted a replica, the connections that broke
with the old master are made again to the new one. What is added here:
- the pool blocks when full (up to CACHE_REDIS_TIMEOUT), as the cache's pool on one server
  does; redis-py's sentinel pool raises "Too many connections" instead;
- it says when the master changed (`on_master_change`), synchronously, before any connection
  reaches the new master. Replication is asynchronous, so a deletion the old master
  acknowledged may never have reached the replica promoted in its place: the cache client
  then forgets whatever may be stale before it reads again (`CacheClient`);
- a connection to a former master (one that was demoted, not killed, and still answers) is
  closed when it comes back to the pool instead of being used again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as redis
from aiocache.serializers import NullSerializer
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from .backends import NO_CALL_TIMEOUT, PrefixedRedisBackend, pool_settings

logger = logging.getLogger("quart_app.cache")

Address = tuple[str, int]


class MasterFollowingPool(SentinelConnectionPool, BlockingConnectionPool):
    """`master_for`'s pool, blocking when full, telling its listeners when the master moved."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._listeners: list[Callable[[], None]] = []

    def on_master_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    async def get_master_address(self) -> Address:
        address: Address = await self.sentinel_manager.discover_master(self.service_name)
        if self.master_address != address:
            previous, self.master_address = self.master_address, address
            if previous is not None:
                logger.warning("redis sentinel: master %r moved from %s:%s to %s:%s",
                               self.service_name, *previous, *address)
                # Before this connection (or any other) sends a command to the new master.
                for listener in self._listeners:
                    listener()
            await self.disconnect(inuse_connections=False)
        return address

    async def release(self, connection: AbstractConnection) -> None:
        if self.master_address is not None and (
                (getattr(connection, "host", None), getattr(connection, "port", None))
                != tuple(self.master_address)):
            await connection.disconnect()
        await super().release(connection)


def master_client(
    sentinels: Sequence[Address], master: str, *, db: int, password: str | None,
    sentinel_password: str | None, pool_class: type[SentinelConnectionPool] = MasterFollowingPool,
    **options: Any,
) -> tuple[Sentinel, redis.Redis]:
    """A client of `master` (and the Sentinel object to close with it); `options` are redis-py
    connection settings, whose socket timeouts apply to the sentinels too."""
    sentinel_kwargs: dict[str, Any] = {name: value for name, value in options.items()
                                       if name.startswith("socket_")}
    # A sentinel that does not answer is passed over for the next one, not retried.
    sentinel_kwargs["retry"] = Retry(NoBackoff(), 0)
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    manager = Sentinel(list(sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client = manager.master_for(master, connection_pool_class=pool_class, db=db,
                                password=password, **options)
    return manager, client


class SentinelRedisBackend(PrefixedRedisBackend):
    """`PrefixedRedisBackend` on the master the sentinels name, whichever server that is."""

    #: The server behind it can be replaced: `on_master_change` says when.
    FAILS_OVER = True

    def __init__(
        self, sentinels: Sequence[Address], master: str, *, db: int, password: str | None,
        sentinel_password: str | None, pool_size: int, socket_timeout: float,
        connection_options: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        # PrefixedRedisBackend's own __init__ would open a pool on one URL: skipped.
        super(PrefixedRedisBackend, self).__init__(
            serializer=NullSerializer(), timeout=NO_CALL_TIMEOUT, **kwargs)
        settings = pool_settings(pool_size, socket_timeout, connection_options)
        self.sentinel, self.client = master_client(
            sentinels, master, db=db, password=password, sentinel_password=sentinel_password,
            **settings)

    def on_master_change(self, listener: Callable[[], None]) -> None:
        pool = self.client.connection_pool
        assert isinstance(pool, MasterFollowingPool)
        pool.on_master_change(listener)

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        await super()._close()
        await self.sentinel.aclose()
