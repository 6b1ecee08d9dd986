"""The cache layer: Flask-Caching's API over aiocache, in memory (default) or in Redis."""

from .client import MISSING, CacheClient, CacheUnavailable
from .extension import Cache
from .responses import CachedResponse
from .settings import CacheSettings

__all__ = ["MISSING", "Cache", "CacheClient", "CacheSettings", "CacheUnavailable",
           "CachedResponse"]
