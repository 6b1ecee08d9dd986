"""The `Cache` extension: Flask-Caching's `cache` object for Quart apps.

Used as Flask-Caching's is on Flask, on any Quart app: `Cache(app)`, `Cache(app, config=...)`,
or `cache = Cache(config=...)` at module level (so views can import it) and
`cache.init_app(app, config=...)` later; config given to `init_app` wins over the
constructor's, which wins over `app.config`. Each (app, Cache) pair has its own
`CacheClient`, opened in `before_serving` and closed in `after_serving`, so several `Cache`
objects on one app (different prefixes) and one `Cache` on several apps never share
entries. The decorators (`cached`, `memoize`) are applied once, at import, and find the
app serving each call the same way.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec

from aiocache.base import BaseCache
from quart import Quart, current_app, has_app_context

from ..config import CACHE_TYPE_ALIASES, SHARED_CACHE_TYPES, cache_config
from . import memoize as memoizing
from . import views
from .client import CacheClient
from .keys import HashMethod, QueryArgs
from .outage import CacheUnavailable
from .runtime import CacheRuntime
from .settings import CacheSettings
from .write_guard import guard_writes

P = ParamSpec("P")

EXTENSION_KEY = "cache"

logger = logging.getLogger("quart_app.cache")


@dataclass(slots=True)
class _AppCache:
    """One Cache's state on one app: its settings, and while the app serves, its runtime."""

    config: dict[str, Any]
    settings: CacheSettings
    runtime: CacheRuntime | None = None


class Cache:
    """Flask-Caching's `Cache`: the key/value API and the decorators, for the current app."""

    def __init__(
        self, app: Quart | None = None, with_jinja2_ext: bool = True,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        # `with_jinja2_ext` keeps Flask-Caching's positional signature; there is no
        # `{% cache %}` tag here, so a template using one fails to compile, visibly.
        if config is not None and not isinstance(config, Mapping):
            raise ValueError("`config` must be a mapping of CACHE_* settings or None")
        #: The settings given to the constructor (Flask-Caching's `cache.config`).
        self.config = dict(config) if config is not None else None
        #: The last app `init_app` was called with (Flask-Caching's `cache.app`); calls
        #: inside an app context use that app instead.
        self.app: Quart | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart, config: Mapping[str, Any] | None = None) -> None:
        if config is not None and not isinstance(config, Mapping):
            raise ValueError("`config` must be a mapping of CACHE_* settings or None")
        merged = cache_config(app.config, self.config, config)
        if merged["CACHE_TYPE"] == "NullCache" and not merged["CACHE_NO_NULL_WARNING"]:
            warnings.warn("CACHE_TYPE is NullCache: caching is effectively disabled "
                          "(CACHE_NO_NULL_WARNING = True silences this)", stacklevel=2)
        state = _AppCache(merged, CacheSettings.from_config(merged))
        if state.settings.cache_type == "RedisClusterCache":
            # Imported here: redis-py's cluster client is only loaded by apps that use it.
            from .cluster import refuse_servers_without_cluster_mode

            refuse_servers_without_cluster_mode(
                state.settings.cluster_nodes, password=state.settings.redis_password,
                timeout=state.settings.redis_timeout)
        app.extensions.setdefault(EXTENSION_KEY, {})[self] = state
        self.app = app
        if state.settings.cache_type in SHARED_CACHE_TYPES or app.config.get("SIGNALS_BUS_URL"):
            # Only a shared cache, or one the bus invalidates, can drop an invalidation that
            # another process depends on.
            guard_writes(app, state.settings.retry_interval)

        @app.before_serving
        async def open_cache() -> None:
            # Connections are made on first use: an unreachable Redis must not stop start-up.
            client = CacheClient(state.settings, _custom_backend(app, state.config))
            state.runtime = CacheRuntime(client, state.config["CACHE_HONOR_NO_CACHE"],
                                         source_check=state.config["CACHE_SOURCE_CHECK"],
                                         hash_method=state.config["CACHE_HASH_METHOD"])

        @app.after_serving
        async def close_cache() -> None:
            runtime, state.runtime = state.runtime, None
            if runtime is not None:
                await runtime.client.close()
                logger.info("cache closed (%s)", state.settings.cache_type)

    @property
    def client(self) -> CacheClient:
        """The current app's client (needs an app context while the app is serving)."""
        return self.client_for(self._app())

    @property
    def cache(self) -> BaseCache:
        """The current app's backend (Flask-Caching's `cache.cache`), for what `Cache` does not
        proxy; keys there are full keys, prefix included, and values are tagged JSON text."""
        return self.client.backend

    def client_for(self, app: Quart) -> CacheClient:
        """`app`'s client, for code that is handed the app (signal receivers get it as sender)."""
        return self.runtime_for(app).client

    def runtime_for(self, app: Quart) -> CacheRuntime:
        """What `app`'s decorated views and functions use: client, flights, stats."""
        state: _AppCache | None = app.extensions.get(EXTENSION_KEY, {}).get(self)
        if state is None:
            raise RuntimeError(f"this Cache is not set up on app {app.name!r}: call "
                               "cache.init_app(app) (or Cache(app)) first")
        if state.runtime is None:
            raise RuntimeError("the cache is not open: the app is not serving (use "
                               "`async with app.test_app():` in tests)")
        return state.runtime

    def _app(self) -> Quart:
        if has_app_context():
            return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
        if self.app is None:
            raise RuntimeError("no app context, and init_app was never called")
        return self.app

    def _current_runtime(self) -> CacheRuntime:
        return self.runtime_for(self._app())

    # --- decorators ---------------------------------------------------------------------

    def cached(
        self, timeout: float | None = None, key_prefix: str | Callable[[], Any] = "view/%s",
        unless: Callable[..., Any] | None = None, forced_update: Callable[[], Any] | None = None,
        is_stale: Callable[..., Any] | None = None,
        response_filter: Callable[[Any], Any] | None = None, query_string: bool = True,
        hash_method: HashMethod | None = None, cache_none: bool = False,
        make_cache_key: Callable[..., Any] | None = None, source_check: bool | None = None,
        response_hit_indication: bool = False,
    ) -> Callable[[Callable[P, Any]], Callable[P, Awaitable[Any]]]:
        """Cache a view's response, or a plain function's value: Flask-Caching's `@cache.cached`.

        On a view (put it under the route decorator) only GET and HEAD are cached, HEAD from
        GET's entry. The key is the path, the query string (sorted, every value; off with
        `query_string=False`) and `key_prefix` (`%s` is replaced by the path, or a callable
        returns it); `make_cache_key(*view_args)` replaces path and query. A response naming
        headers in `Vary` is cached per value of those headers. Called any other way (a
        function a view calls, or outside a request), the function's value is cached under
        `key_prefix` and returned, as in Flask-Caching.

        - `timeout`: seconds an entry lives (None: CACHE_DEFAULT_TIMEOUT; 0: no expiry);
          assigning `view.cache_timeout` changes it for entries stored afterwards.
        - `unless()` (or `unless(view, *args, **kwargs)`) true: run the view, no caching.
        - `forced_update()` true: run the view and replace the entry; `is_stale(cached)` (or
          `is_stale(cached, *args, **kwargs)`) true on a hit does the same (a view's cached
          value is its response).
        - `response_filter(returned)` gets what the view returned (a `(body, status)` tuple,
          a Response, a value) and decides what is stored instead of the default (status
          200, 203, 301, 404 or 410); a response with `Set-Cookie`, `Vary: *`,
          `Cache-Control: private/no-store` or a streamed body is never stored.
        - `cache_none`: a plain function's `None` is cached only with `cache_none=True`.
        - `hash_method` (a hashlib constructor) hashes the keys; `source_check` (None:
          CACHE_SOURCE_CHECK) puts the function's source in them; `response_hit_indication`
          adds Flask-Caching's `hit_cache: True` header to responses served from the cache.

        Responses carry a strong `ETag` (If-None-Match gets a 304), `Age`, `Cache-Control:
        max-age` (the remaining lifetime, unless the view set Cache-Control) and
        `Cache-Status`. Concurrent misses run the view once (with Redis, once across
        processes). When the cache fails, the view runs uncached. The decorated view has
        `uncached`, `cache_timeout` and `make_cache_key(path=, query_args=)`.
        """
        return views.cached(
            self._current_runtime, timeout=timeout, key_prefix=key_prefix,
            query_string=query_string, unless=unless, response_filter=response_filter,
            forced_update=forced_update, cache_none=cache_none, make_cache_key=make_cache_key,
            hash_method=hash_method, source_check=source_check,
            response_hit_indication=response_hit_indication, is_stale=is_stale,
            runtime_for=self.runtime_for,
        )

    def memoize(
        self, timeout: float | None = None, make_name: Callable[[str], str] | None = None,
        unless: Callable[..., Any] | None = None, forced_update: Callable[..., Any] | None = None,
        is_stale: Callable[..., Any] | None = None,
        response_filter: Callable[[Any], Any] | None = None,
        hash_method: HashMethod | None = None, cache_none: bool = False,
        source_check: bool | None = None, args_to_ignore: Iterable[str] | None = None,
    ) -> memoizing.Memoizer:
        """Cache a function's results per arguments: Flask-Caching's `@cache.memoize`.

        The decorated function is async (a sync one runs in Quart's thread pool). Arguments
        are bound to the signature (`f(1)` and `f(a=1)` share an entry); those named in
        `args_to_ignore` are left out of the key. Arguments must be cacheable values or
        objects whose class defines `__caching_id__()` or a `__repr__` that identifies them.
        `make_name(name)` renames the function in keys; `unless` is as for `cached`;
        `forced_update()` (or `forced_update(*args, **kwargs)`) true recomputes, and so does
        `is_stale(cached_value)` (or `is_stale(cached_value, *args, **kwargs)`) on a hit;
        `response_filter(value)` false does not store; `None` is cached only with
        `cache_none=True`. The decorated function has `uncached`, `cache_timeout`
        (assignable), `make_cache_key(f.uncached, *args)` and `delete_memoized()`.
        """
        options = memoizing.ValueOptions(unless, forced_update, response_filter, cache_none,
                                         is_stale)
        return memoizing.Memoizer(self._current_runtime, timeout, make_name, args_to_ignore,
                                  options, hash_method, source_check)

    async def delete_memoized(self, function: Callable[..., Any], *args: Any,
                              **kwargs: Any) -> None:
        """Invalidate `function(*args, **kwargs)`'s entry, or with no arguments all of them;
        `obj.method` binds `obj` (only its entries), `Class.method` needs the instance first."""
        await memoizing.delete_memoized(self._current_runtime(), function, *args, **kwargs)

    async def delete_memoized_verhash(self, function: Callable[..., Any], *args: Any) -> None:
        """Flask-Caching's name for forgetting every entry of `function` (its "version")."""
        await memoizing.delete_memoized(self._current_runtime(), function)

    async def delete_cached(
        self, view: Callable[..., Any], path: str | None = None,
        query_args: QueryArgs | None = None,
    ) -> bool:
        """Invalidate a cached view: all its entries, those of one `path`, or of one query
        (`"limit=15&offset=20"`, a mapping or pairs); True when something was cached there."""
        return await views.delete_cached(self.client, view, path, query_args)

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

    async def unlink(self, *keys: str) -> list[str]:
        """Flask-Caching's `unlink` (Redis UNLINK): here the same as `delete_many`."""
        return await self.client.delete_many(*keys)

    async def inc(self, key: str, delta: int = 1) -> int | None:
        return await self.client.inc(key, delta)

    async def dec(self, key: str, delta: int = 1) -> int | None:
        return await self.client.dec(key, delta)


def _custom_backend(app: Quart, config: Mapping[str, Any]) -> BaseCache | None:
    """A custom CACHE_TYPE's backend: Flask-Caching's `factory(app, config, args, options)`."""
    if config["CACHE_TYPE"] in CACHE_TYPE_ALIASES.values():
        return None
    module, _, name = config["CACHE_TYPE"].rpartition(".")
    factory = getattr(importlib.import_module(module), name)
    backend = factory(app, dict(config), list(config["CACHE_ARGS"]),
                      dict(config["CACHE_OPTIONS"] or {}))
    if not isinstance(backend, BaseCache):
        raise TypeError(
            f"CACHE_TYPE {config['CACHE_TYPE']} returned a {type(backend).__name__}: return an "
            "aiocache BaseCache storing text under full keys, such as "
            "quart_app.cache.backends.BoundedMemoryBackend or a subclass of it"
        )
    return backend


__all__ = ["Cache", "CacheUnavailable"]
