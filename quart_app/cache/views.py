"""`cached`: Flask-Caching's view decorator for Quart, and `delete_cached`.

One GET (or HEAD) of a cached view goes:
1. one round trip reads the entry and its generation tokens (`generations`); a current entry
   is served (`Cache-Status: quart_app; hit`), as a 304 when the client already has it;
2. otherwise the tokens are made current and the view runs once for everyone waiting on the
   same key (`single_flight`): once per process, and with Redis once across processes;
3. the response is stored if it may be (status 200/203/301/404/410 by default, never with
   `Set-Cookie`) and every waiting request gets its own copy of it.
Whenever the cache fails (Redis down, or in its retry pause) the view simply runs, uncached:
a cache problem is never an error page.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec

from quart import Request, Response, current_app, request
from quart.typing import ResponseTypes
from werkzeug.exceptions import HTTPException

from .client import MISSING, CacheClient
from .generations import (
    Contended,
    State,
    Tokens,
    computation_key,
    establish,
    invalidate,
    read,
    unwrap,
    wrap,
)
from .keys import (
    EntryKeys,
    qualified_name,
    query_args_pairs,
    sorted_query,
    vary_pairs,
    view_keys,
    view_scopes,
)
from .responses import STORABLE_STATUSES, StoredResponse, refusal
from .runtime import CacheRuntime, DecoratedCall, bypassed, call_user, settings_of
from .stats import Outcome
from .validators import (
    VALIDATED_STATUSES,
    cache_status,
    client_has,
    freshness_headers,
    make_not_modified,
    no_cache_requested,
)

logger = logging.getLogger("quart_app.cache")

P = ParamSpec("P")

_CACHED_METHODS = frozenset({"GET", "HEAD"})
# The entry key of a response with `Vary` holds this marker naming the headers; each
# combination of their values has its own entry under a variant key.
_VARY = "vary"


@dataclass(frozen=True, slots=True)
class CachedView:
    """A view's caching settings, attached to the decorated view as `view.cached`."""

    name: str
    timeout: float | None
    key_prefix: str | Callable[[], Any]
    query_string: bool
    unless: Callable[..., Any] | None
    response_filter: Callable[[ResponseTypes], Any] | None
    forced_update: Callable[[], Any] | None
    make_cache_key: Callable[..., Any] | None

    @property
    def keyed_by_query(self) -> bool:
        return self.query_string and self.make_cache_key is None


def cached(
    runtime: Callable[[], CacheRuntime], *, timeout: float | None = None,
    key_prefix: str | Callable[[], Any] = "view/%s", query_string: bool = True,
    unless: Callable[..., Any] | None = None,
    response_filter: Callable[[ResponseTypes], Any] | None = None,
    forced_update: Callable[[], Any] | None = None, cache_none: bool = False,
    make_cache_key: Callable[..., Any] | None = None,
) -> Callable[[Callable[P, Any]], Callable[P, Awaitable[ResponseTypes]]]:
    """See `Cache.cached`; `runtime` returns the current app's `CacheRuntime`."""
    if timeout is not None and timeout < 0:
        raise ValueError("a cache timeout cannot be negative")

    def decorator(view: Callable[P, Any]) -> Callable[P, Awaitable[ResponseTypes]]:
        settings = CachedView(
            qualified_name(view), timeout, key_prefix, query_string, unless,
            response_filter, forced_update, make_cache_key,
        )

        @functools.wraps(view)
        async def cached_view(*args: P.args, **kwargs: P.kwargs) -> ResponseTypes:
            return await _ViewCall(settings, runtime(), view, args, kwargs).respond()

        vars(cached_view).update(cached=settings, uncached=view, cache_timeout=timeout)
        return cached_view

    return decorator


async def delete_cached(
    client: CacheClient, view: Callable[..., Any], path: str | None = None,
    query_args: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
) -> None:
    """Invalidate a cached view: all of it, one `path`, or one path with `query_args`.

    `path` is the request path as the view sees it (`request.path`, e.g. "/api/info/5").
    With `query_args` on a view that ignores the query string, the whole path goes.
    """
    settings = settings_of(view, CachedView, "cached")
    if query_args is not None and path is None:
        raise TypeError("delete_cached: query_args needs a path")
    query = None
    if query_args is not None and settings.keyed_by_query:
        query = query_args_pairs(query_args)
    await invalidate(client, view_scopes(settings.name, path, query)[-1])


@dataclass(frozen=True, slots=True)
class _Produced:
    """A view's response as the requests waiting on one computation receive it."""

    #: The shareable form; None when the response may serve only the request that made it.
    entry: StoredResponse | None
    #: The computing request's values of the headers the entry varies on.
    vary: tuple[tuple[str, str | None], ...] = ()
    stored: bool = False
    #: Found in the cache, stored there by another process while this one waited.
    from_cache: bool = False
    #: Storing failed because the cache did.
    store_failed: bool = False
    own: ResponseTypes | None = None


class _ViewCall(DecoratedCall):
    """One request to a cached view."""

    def __init__(
        self, settings: CachedView, runtime: CacheRuntime, view: Callable[..., Any],
        args: tuple[Any, ...], kwargs: dict[str, Any],
    ) -> None:
        super().__init__(settings.name, settings.timeout, runtime, view, args, kwargs)
        self.settings = settings
        # The request itself, not the proxy: each proxy access costs a context lookup.
        self.request: Request = request._get_current_object()  # type: ignore[attr-defined]
        self.headers = self.request.headers

    async def respond(self) -> ResponseTypes:
        if self.request.method not in _CACHED_METHODS:
            return self._finish(await self._run_view(), "bypass", fwd="method")
        if await bypassed(self.settings.unless, self.function, self.args, self.kwargs):
            return self._finish(await self._run_view(), "bypass", fwd="bypass")
        refresh = await self._refresh_requested()
        keys = await self._keys()
        state: State = "miss"
        variant = keys.entry
        try:
            entry, state, tokens, variant = await self._lookup(keys)
            if entry is not None and state == "hit" and not refresh:
                return self._finish(self._render(entry, stored=True), "hit", hit=True,
                                    ttl=entry.remaining(time.time()))
            current = await establish(self.client, keys.scopes, tokens, self.lifetime)
        except Contended:
            # Invalidated while it was being read: answered fresh, not stored.
            return self._finish(await self._run_view(), "stale", fwd="stale")
        except Exception:
            logger.exception("cache failed for %s; serving it uncached", self.settings.name)
            current = None
        if current is None:
            return self._finish(await self._run_view(), "error", fwd="miss",
                                detail="cache-unavailable")
        outcome: Outcome = "stale" if state == "stale" else "miss"
        if refresh:
            produced = await self._produce(keys, current)
            return self._finish_produced(produced, outcome, fwd="request")
        produced, computed = await self.runtime.once(
            computation_key(variant, current),
            lambda: self._produce(keys, current), lambda: self._look(keys, current),
        )
        if not computed and not self._may_share(produced):
            produced, computed = await self._produce(keys, current), True
        return self._finish_produced(produced, outcome, fwd=outcome, collapsed=not computed)

    # --- steps ----------------------------------------------------------------------------

    async def _refresh_requested(self) -> bool:
        forced = self.settings.forced_update
        if forced is not None and await call_user(forced):
            return True
        return self.runtime.honor_no_cache and no_cache_requested(self.headers)

    async def _keys(self) -> EntryKeys:
        prefix = self.settings.key_prefix
        path = self.request.path
        prefix = (str(await call_user(prefix)) if callable(prefix)
                  else prefix.replace("%s", path))
        custom = None
        if self.settings.make_cache_key is not None:
            custom = str(await call_user(self.settings.make_cache_key, *self.args, **self.kwargs))
        query = (sorted_query(self.request.args.items(multi=True)) if self.settings.query_string
                 else None)
        return view_keys(self.settings.name, prefix, path, query, custom)

    async def _lookup(
        self, keys: EntryKeys
    ) -> tuple[StoredResponse | None, State, tuple[str | None, ...], str]:
        stored, tokens = await read(self.client, keys.entry, keys.scopes)
        entry, state, variant = await self._resolve(keys, stored, tokens)
        return entry, state, tokens, variant

    async def _resolve(
        self, keys: EntryKeys, stored: Any, tokens: tuple[str | None, ...]
    ) -> tuple[StoredResponse | None, State, str]:
        """Follow a Vary marker to this request's variant; check the entry's tokens."""
        variant = keys.entry
        if isinstance(stored, dict) and _VARY in stored:
            variant = keys.variant(vary_pairs(stored[_VARY], self.headers))
            stored = await self.client.get(variant)
        value, state = unwrap(stored, tokens)
        entry = None if value is MISSING else StoredResponse.from_value(value)
        if entry is None and state == "hit":
            state = "miss"  # unreadable (written by an older version): replace it
        return entry, state, variant

    async def _look(self, keys: EntryKeys, tokens: Tokens) -> _Produced | None:
        """The entry another process stored under these tokens, if it is there yet."""
        entry, state, _ = await self._resolve(keys, await self.client.get(keys.entry), tokens)
        if entry is None or state != "hit":
            return None
        return _Produced(entry, tuple(vary_pairs(entry.vary, self.headers)), stored=True,
                         from_cache=True)

    async def _produce(self, keys: EntryKeys, tokens: Tokens) -> _Produced:
        response = await self._run_view()
        if refusal(response) is not None or not isinstance(response, Response):
            return _Produced(None, own=response)
        entry = await StoredResponse.snapshot(response, self.lifetime)
        vary = tuple(vary_pairs(entry.vary, self.headers))
        if not await self._storable(response):
            return _Produced(entry, vary)
        stored = await self._store(keys, entry, vary, tokens)
        return _Produced(entry, vary, stored=stored, store_failed=not stored)

    async def _run_view(self) -> ResponseTypes:
        try:
            result = await current_app.ensure_async(self.function)(*self.args, **self.kwargs)
        except HTTPException as error:
            # As Quart would handle it, but here, so that a 404 or a 410 can be cached.
            result = await current_app.handle_user_exception(error)
        return await current_app.make_response(result)

    async def _storable(self, response: ResponseTypes) -> bool:
        if self.settings.response_filter is not None:
            return bool(await call_user(self.settings.response_filter, response))
        return response.status_code in STORABLE_STATUSES

    async def _store(
        self, keys: EntryKeys, entry: StoredResponse,
        vary: tuple[tuple[str, str | None], ...], tokens: Tokens,
    ) -> bool:
        payload = wrap(entry.to_value(), tokens)
        try:
            if not vary:
                return await self.client.set(keys.entry, payload, timeout=self.lifetime)
            marker = {_VARY: list(entry.vary)}
            written = await self.client.set_many(
                {keys.entry: marker, keys.variant(vary): payload}, timeout=self.lifetime
            )
            return len(written) == 2
        except Exception:
            logger.exception("cache failed storing %s; served uncached", self.settings.name)
            return False

    def _may_share(self, produced: _Produced) -> bool:
        """Whether a response computed for another request fits this one."""
        entry = produced.entry
        return entry is not None and tuple(vary_pairs(entry.vary, self.headers)) == produced.vary

    # --- the response ---------------------------------------------------------------------

    def _render(self, entry: StoredResponse, stored: bool) -> ResponseTypes:
        extra = None
        if stored:
            now = time.time()
            extra = freshness_headers(entry.age(now), entry.remaining(now),
                                      entry.header("Cache-Control") is not None)
        response = entry.to_response(extra)
        if entry.status in VALIDATED_STATUSES and client_has(self.headers, entry.header("ETag")):
            make_not_modified(response)
        return response

    def _finish_produced(
        self, produced: _Produced, outcome: Outcome, fwd: str, collapsed: bool = False
    ) -> ResponseTypes:
        if produced.entry is None:
            assert produced.own is not None
            return self._finish(produced.own, outcome, fwd=fwd)
        response = self._render(produced.entry, stored=produced.stored)
        if produced.from_cache:
            return self._finish(response, "hit", hit=True,
                                ttl=produced.entry.remaining(time.time()), collapsed=collapsed)
        if produced.store_failed:
            return self._finish(response, "error", fwd=fwd, detail="cache-unavailable")
        return self._finish(response, outcome, fwd=fwd, stored=produced.stored,
                            collapsed=collapsed)

    def _finish(
        self, response: ResponseTypes, outcome: Outcome, **status: Any
    ) -> ResponseTypes:
        response.headers["Cache-Status"] = cache_status(**status)
        self.record(outcome)
        return response
