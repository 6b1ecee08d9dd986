"""The cache layer: Flask-Caching's API over aiocache, in memory (default) or in Redis."""

from .client import MISSING, CacheClient
from .extension import Cache
from .outage import CacheUnavailable
from .responses import CachedResponse
from .settings import CacheSettings

__all__ = ["MISSING", "Cache", "CacheClient", "CacheSettings", "CacheUnavailable",
           "CachedResponse"]
