"""What a cache is made of: its settings (`CacheSettings`, read from the app's config) and
the backend they name (`make_backend`), kept apart from `CacheClient` so that choosing and
building a backend is one place, and a new backend is added here and in its own module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiocache.base import BaseCache

from .backends import BoundedMemoryBackend, NullBackend, PrefixedRedisBackend
from .sentinel import SentinelRedisBackend


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
