"""The `Cache` extension: Flask-Caching's `cache` object for Quart apps.

`cache = Cache()` lives at module level so views can import it; `cache.init_app(app)` gives
each app its own `CacheClient`, opened in `before_serving` and closed in `after_serving`.
Calls made inside an app context go to that app's client, so two apps in one process never
share entries. The decorators (`cached`, `memoize`) are applied once, at import, and find
the app serving each call the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ParamSpec

from quart import Quart, current_app
from quart.typing import ResponseTypes

from . import memoize as memoizing
from . import views
from .client import CacheClient, CacheSettings, CacheUnavailable
from .runtime import CacheRuntime
from .write_guard import guard_writes

P = ParamSpec("P")

EXTENSION_KEY = "cache"

logger = logging.getLogger("quart_app.cache")


class Cache:
    def __init__(self, app: Quart | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart) -> None:
        settings = CacheSettings.from_config(app.config)
        holder: dict[str, Any] = {}
        app.extensions[EXTENSION_KEY] = holder
        if settings.cache_type == "RedisCache" or app.config.get("SIGNALS_BUS_URL"):
            # Only a shared cache, or one the bus invalidates, can drop an invalidation that
            # another process depends on.
            guard_writes(app, settings.retry_interval)

        @app.before_serving
        async def open_cache() -> None:
            # Connections are made on first use: an unreachable Redis must not stop start-up.
            client = holder["client"] = CacheClient(settings)
            holder["runtime"] = CacheRuntime(client, app.config["CACHE_HONOR_NO_CACHE"])

        @app.after_serving
        async def close_cache() -> None:
            holder.pop("runtime", None)
            client = holder.pop("client", None)
            if client is not None:
                await client.close()
                logger.info("cache closed (%s)", settings.cache_type)

    @property
    def client(self) -> CacheClient:
        """The current app's client (needs an app context while the app is serving)."""
        return self.client_for(current_app)

    @staticmethod
    def client_for(app: Quart) -> CacheClient:
        """`app`'s client, for code that is handed the app (signal receivers get it as sender)."""
        return Cache.runtime_for(app).client

    @staticmethod
    def runtime_for(app: Quart) -> CacheRuntime:
        """What `app`'s decorated views and functions use: client, flights, stats."""
        runtime = app.extensions[EXTENSION_KEY].get("runtime")
        if runtime is None:
            raise RuntimeError("the cache is not open: the app is not serving")
        return runtime  # type: ignore[no-any-return]

    def _current_runtime(self) -> CacheRuntime:
        return self.runtime_for(current_app)

    # --- decorators ---------------------------------------------------------------------

    def cached(
        self, timeout: float | None = None, *, key_prefix: str | Callable[[], Any] = "view/%s",
        query_string: bool = True, unless: Callable[..., Any] | None = None,
        response_filter: Callable[[ResponseTypes], Any] | None = None,
        forced_update: Callable[[], Any] | None = None, cache_none: bool = False,
        make_cache_key: Callable[..., Any] | None = None,
    ) -> Callable[[Callable[P, Any]], Callable[P, Awaitable[ResponseTypes]]]:
        """Cache a view's response (sync or async view): Flask-Caching's `@cache.cached`.

        Put it under the route decorator. Only GET and HEAD are cached, HEAD from GET's
        entry. The key is the method, the path, the query string (sorted, every value; off
        with `query_string=False`) and `key_prefix` (`%s` is replaced by the path, or a
        callable returns it); `make_cache_key(*view_args)` replaces path and query. A
        response naming headers in `Vary` is cached per value of those headers.

        - `timeout`: seconds an entry lives (None: CACHE_DEFAULT_TIMEOUT; 0: no expiry).
        - `unless()` (or `unless(view, *args, **kwargs)`) true: run the view, no caching.
        - `forced_update()` true: run the view and replace the entry.
        - `response_filter(response)` decides what is stored instead of the default (status
          200, 203, 301, 404 or 410); a response with `Set-Cookie`, `Vary: *`,
          `Cache-Control: private/no-store` or a streamed body is never stored.
        - `cache_none`: accepted for Flask-Caching's signature; an entry is a response,
          never None, so a miss is never mistaken for a cached value.

        Responses carry a strong `ETag` (If-None-Match gets a 304), `Age`, `Cache-Control:
        max-age` (the remaining lifetime, unless the view set Cache-Control) and
        `Cache-Status`. Concurrent misses run the view once (with Redis, once across
        processes). When the cache fails, the view runs uncached.
        """
        return views.cached(
            self._current_runtime, timeout=timeout, key_prefix=key_prefix,
            query_string=query_string, unless=unless, response_filter=response_filter,
            forced_update=forced_update, cache_none=cache_none, make_cache_key=make_cache_key,
        )

    def memoize(
        self, timeout: float | None = None, *, make_name: Callable[[str], str] | None = None,
        unless: Callable[..., Any] | None = None, args_to_ignore: Iterable[str] | None = None,
    ) -> memoizing.Memoizer:
        """Cache a function's results per arguments: Flask-Caching's `@cache.memoize`.

        The decorated function is async (a sync one runs in Quart's thread pool). Arguments
        are bound to the signature (`f(1)` and `f(a=1)` share an entry); those named in
        `args_to_ignore` are left out of the key. Arguments must be cacheable values or
        objects whose class defines a `__repr__` that identifies them. `make_name(name)`
        renames the function in keys; `unless` is as for `cached`. None is cached.
        """
        return memoizing.Memoizer(self._current_runtime, timeout, make_name, unless,
                                  args_to_ignore)

    async def delete_memoized(self, function: Callable[..., Any], *args: Any,
                              **kwargs: Any) -> None:
        """Invalidate `function(*args, **kwargs)`'s entry, or with no arguments all of them."""
        await memoizing.delete_memoized(self.client, function, *args, **kwargs)

    async def delete_cached(
        self, view: Callable[..., Any], path: str | None = None,
        query_args: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    ) -> None:
        """Invalidate a cached view: all its entries, those of one `path`, or of one query."""
        await views.delete_cached(self.client, view, path, query_args)

    def view_stats(self) -> dict[str, dict[str, int]]:
        """Hit, miss, stale, error and bypass counts per decorated view and function."""
        return self._current_runtime().stats.snapshot()

    # --- Flask-Caching's API, for the current app ----------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        return await self.client.get(key, default)

    async def set(self, key: str, value: Any, timeout: int | float | None = None) -> bool:
        return await self.client.set(key, value, timeout)

    async def add(self, key: str, value: Any, timeout: int | float | None = None) -> bool:
        return await self.client.add(key, value, timeout)

    async def delete(self, key: str) -> bool:
        return await self.client.delete(key)

    async def has(self, key: str) -> bool:
        return await self.client.has(key)

    async def clear(self) -> bool:
        return await self.client.clear()

    async def get_many(self, *keys: str) -> list[Any]:
        return await self.client.get_many(*keys)

    async def get_dict(self, *keys: str) -> dict[str, Any]:
        return await self.client.get_dict(*keys)

    async def set_many(
        self, mapping: Mapping[str, Any], timeout: int | float | None = None
    ) -> list[str]:
        return await self.client.set_many(mapping, timeout)

    async def delete_many(self, *keys: str) -> list[str]:
        return await self.client.delete_many(*keys)

    async def inc(self, key: str, delta: int = 1) -> int | None:
        return await self.client.inc(key, delta)

    async def dec(self, key: str, delta: int = 1) -> int | None:
        return await self.client.dec(key, delta)


__all__ = ["Cache", "CacheUnavailable"]
