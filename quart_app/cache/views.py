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
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec

from quart import (
    Quart,
    Request,
    Response,
    after_this_request,
    current_app,
    has_request_context,
    request,
)
from quart.typing import ResponseTypes
from werkzeug.exceptions import HTTPException

from ..names import qualified_name
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
    HashMethod,
    QueryArgs,
    digest,
    query_args_pairs,
    sorted_query,
    source_digest,
    vary_pairs,
    view_base,
    view_keys,
    view_scopes,
)
from .memoize import ValueCall, ValueOptions
from .responses import STORABLE_STATUSES, CachedResponse, StoredResponse, refusal
from .runtime import (
    CacheRuntime,
    DecoratedCall,
    bypassed,
    call_user,
    judged_stale,
    settings_of,
    update_forced,
)
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
# The marker also lists the variants stored: a client chooses header values, so without a
# bound one `Vary: Accept-Language` view could fill the cache. Past this many, a new
# combination is served uncached until the entry expires or is invalidated.
_VARIANTS = "variants"
MAX_VARIANTS = 32


@dataclass(frozen=True, slots=True)
class CachedView:
    """A view's caching settings, attached to the decorated view as `view.cached`."""

    name: str
    #: As decorated; calls use `view.cache_timeout`, which the user may reassign.
    timeout: float | None
    key_prefix: str | Callable[[], Any]
    query_string: bool
    unless: Callable[..., Any] | None
    response_filter: Callable[[Any], Any] | None
    forced_update: Callable[[], Any] | None
    make_cache_key: Callable[..., Any] | None
    cache_none: bool = False
    hash_method: HashMethod | None = None
    #: `source_check` as given (None: CACHE_SOURCE_CHECK), and the source's digest.
    source_check: bool | None = None
    source: str | None = None
    response_hit_indication: bool = False
    is_stale: Callable[..., Any] | None = None

    @property
    def keyed_by_query(self) -> bool:
        return self.query_string and self.make_cache_key is None

    def hash_of(self, runtime: CacheRuntime | None) -> HashMethod | None:
        """`hash_method`, else CACHE_HASH_METHOD (None: SHA-256)."""
        if self.hash_method is not None or runtime is None:
            return self.hash_method
        return runtime.hash_method

    def source_part(self, runtime: CacheRuntime | None) -> str:
        check = self.source_check
        if check is None:
            check = runtime.source_check if runtime is not None else False
        return f"#{self.source}" if check and self.source else ""

    def value_options(self) -> ValueOptions:
        return ValueOptions(forced_update=self.forced_update,
                            response_filter=self.response_filter, cache_none=self.cache_none,
                            is_stale=self.is_stale)


def cached(
    runtime: Callable[[], CacheRuntime], *, timeout: float | None = None,
    key_prefix: str | Callable[[], Any] = "view/%s", query_string: bool = True,
    unless: Callable[..., Any] | None = None,
    response_filter: Callable[[Any], Any] | None = None,
    forced_update: Callable[[], Any] | None = None, cache_none: bool = False,
    make_cache_key: Callable[..., Any] | None = None, hash_method: HashMethod | None = None,
    source_check: bool | None = None, response_hit_indication: bool = False,
    is_stale: Callable[..., Any] | None = None,
    runtime_for: Callable[[Quart], CacheRuntime] | None = None,
) -> Callable[[Callable[P, Any]], Callable[P, Awaitable[Any]]]:
    """See `Cache.cached`; `runtime` returns the current app's `CacheRuntime`, `runtime_for`
    a given app's (for `fast_hits`, which answers outside any app context)."""
    if timeout is not None and timeout < 0:
        raise ValueError("a cache timeout cannot be negative")

    def decorator(view: Callable[P, Any]) -> Callable[P, Awaitable[Any]]:
        settings = CachedView(
            qualified_name(view), timeout, key_prefix, query_string, unless,
            response_filter, forced_update, make_cache_key, cache_none, hash_method,
            source_check, source_digest(view), response_hit_indication, is_stale,
        )

        @functools.wraps(view)
        async def cached_view(*args: P.args, **kwargs: P.kwargs) -> Any:
            attributes = vars(cached_view)
            current = runtime()
            if _served_as_view(cached_view):
                assigned = attributes["make_cache_key"]
                custom = None if assigned is default_make_cache_key else assigned
                return await _ViewCall(settings, current, view, args, kwargs,
                                       attributes["cache_timeout"], custom).respond()
            return await _function_value(settings, current, view, args, kwargs,
                                         attributes["cache_timeout"])

        def default_make_cache_key(
            *args: Any, path: str | None = None, query_args: QueryArgs | None = None,
            **kwargs: Any,
        ) -> str:
            """Flask-Caching's `view.make_cache_key(path=..., query_args=...)`: the key of the
            view's entry for that path and query (the current request's when not given), for
            `cache.delete(key)`."""
            try:
                current: CacheRuntime | None = runtime()
            except RuntimeError:
                current = None
            if path is None:
                if not has_request_context():
                    raise TypeError("make_cache_key outside a request needs path=")
                path = request.path
            query = None
            if settings.query_string:
                query = (query_args_pairs(query_args) if query_args is not None
                         else sorted_query(request.args.items(multi=True))
                         if has_request_context() else [])
            prefix = _sync(settings.key_prefix) if callable(settings.key_prefix) else (
                settings.key_prefix.replace("%s", path))
            custom = (None if settings.make_cache_key is None
                      else str(_sync(settings.make_cache_key, *args, **kwargs)))
            return view_keys(settings.name, str(prefix) + settings.source_part(current), path,
                             query, custom, settings.hash_of(current)).entry

        vars(cached_view).update(cached=settings, uncached=view, cache_timeout=timeout,
                                 make_cache_key=default_make_cache_key,
                                 cache_runtime_for=runtime_for,
                                 default_make_cache_key=default_make_cache_key)
        return cached_view

    return decorator


def _served_as_view(wrapper: Callable[..., Any]) -> bool:
    """Whether this call is the request's view (not a function a view calls), following
    `__wrapped__` through decorators put between the route and `cached`."""
    if not has_request_context():
        return False
    endpoint = request.endpoint
    served = current_app.view_functions.get(endpoint) if endpoint is not None else None
    while served is not None:
        if served is wrapper:
            return True
        served = getattr(served, "__wrapped__", None)
    return False


def _sync(callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    result = callback(*args, **kwargs)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError("make_cache_key is synchronous: key_prefix and make_cache_key must "
                        "be plain functions to use it (async ones work for requests)")
    return result


async def _function_value(
    settings: CachedView, runtime: CacheRuntime, function: Callable[..., Any],
    args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None,
) -> Any:
    """`cached` on a plain function (or a view called by another view): Flask-Caching caches
    and returns its value under `key_prefix`; the arguments are not part of the key."""
    call = ValueCall(settings.name, timeout, runtime, function, args, kwargs)
    if await bypassed(settings.unless, function, args, kwargs):
        return await call.bypass()
    prefix = settings.key_prefix
    in_request = has_request_context()
    path = None
    if callable(prefix):
        prefix = str(await call_user(prefix))
    elif "%s" in prefix:
        if not in_request:
            raise RuntimeError(
                f"{settings.name}: key_prefix {prefix!r} takes the request path, and there is "
                "no request: give it a key_prefix without %s (or call it in a request)")
        path = request.path
        prefix = prefix.replace("%s", path)
    query = None
    if settings.query_string and in_request and path is not None:
        query = sorted_query(request.args.items(multi=True))
    custom = None
    if settings.make_cache_key is not None:
        custom = str(await call_user(settings.make_cache_key, *args, **kwargs))
    entry = digest(prefix + settings.source_part(runtime), path, query, custom,
                   hash_method=settings.hash_of(runtime))
    keys = EntryKeys(f"{view_base(settings.name)}:value:{entry}",
                     tuple(view_scopes(settings.name, path, query)))
    value, hit = await call.result_and_hit(keys, settings.value_options())
    if hit and settings.response_hit_indication and in_request:
        @after_this_request  # type: ignore[arg-type]
        async def indicate_hit(response: Response) -> Response:
            response.headers["hit_cache"] = "True"
            return response
    return value


async def delete_cached(
    client: CacheClient, view: Callable[..., Any], path: str | None = None,
    query_args: QueryArgs | None = None,
) -> bool:
    """Invalidate a cached view: all of it, one `path`, or one path with `query_args` (a
    query string such as "limit=15&offset=20", a mapping, or pairs). Returns whether
    something was cached there.

    `path` is the request path as the view sees it (`request.path`, e.g. "/api/info/5"); the
    current request's when only `query_args` is given. With `query_args` on a view that
    ignores the query string, the whole path goes.
    """
    settings = settings_of(getattr(view, "__func__", view), CachedView, "cached")
    if query_args is not None and path is None:
        if not has_request_context():
            raise TypeError("delete_cached: query_args needs a path outside a request, e.g. "
                            "delete_cached(view, \"/works\", \"limit=15\")")
        path = request.path
    query = None
    if query_args is not None and settings.keyed_by_query:
        query = query_args_pairs(query_args)
    return await invalidate(client, view_scopes(settings.name, path, query)[-1])


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
        args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None,
        custom_key: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(settings.name, timeout, runtime, view, args, kwargs)
        self.settings = settings
        #: `view.make_cache_key` when the user assigned one; else the `make_cache_key` given.
        self.custom_key = custom_key or settings.make_cache_key
        #: What the view returned, before it was made a response: `response_filter` gets it.
        self.returned: Any = None
        # The request itself, not the proxy: each proxy access costs a context lookup.
        self.request: Request = request._get_current_object()  # type: ignore[attr-defined]
        self.headers = self.request.headers

    async def respond(self) -> ResponseTypes:
        if self.request.method not in _CACHED_METHODS:
            return self._finish(await self._run_view(), "bypass", fwd="method")
        if await bypassed(self.settings.unless, self.function, self.args, self.kwargs):
            return self._finish(await self._run_view(), "bypass", fwd="bypass")
        refresh = await self._refresh_requested()
        judged = False  # is_stale said so
        keys = await self._keys()
        state: State = "miss"
        variant = keys.entry
        try:
            entry, state, tokens, variant = await self._lookup(keys)
            if entry is not None and state == "hit" and not refresh:
                if not await self._judged_stale(entry):
                    return self._finish(self._render(entry, stored=True), "hit", hit=True,
                                        ttl=entry.remaining(time.time()))
                refresh, state, judged = True, "stale", True
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
            return self._finish_produced(produced, outcome,
                                         fwd="stale" if judged else "request")
        produced, computed = await self.runtime.once(
            computation_key(variant, current),
            lambda: self._produce(keys, current), lambda: self._look(keys, current),
        )
        if not computed and not self._may_share(produced):
            produced, computed = await self._produce(keys, current), True
        return self._finish_produced(produced, outcome, fwd=outcome, collapsed=not computed)

    # --- steps ----------------------------------------------------------------------------

    async def _judged_stale(self, entry: StoredResponse) -> bool:
        """`is_stale(response)`: Flask-Caching passes the cached value, here the response."""
        is_stale = self.settings.is_stale
        return is_stale is not None and await judged_stale(
            is_stale, entry.to_response(), self.args, self.kwargs)

    async def _refresh_requested(self) -> bool:
        forced = self.settings.forced_update
        if forced is not None and await update_forced(forced, self.args, self.kwargs):
            return True
        return self.runtime.honor_no_cache and no_cache_requested(self.headers)

    async def _keys(self) -> EntryKeys:
        prefix = self.settings.key_prefix
        path = self.request.path
        prefix = (str(await call_user(prefix)) if callable(prefix)
                  else prefix.replace("%s", path))
        custom = None
        if self.custom_key is not None:
            custom = str(await call_user(self.custom_key, *self.args, **self.kwargs))
        query = (sorted_query(self.request.args.items(multi=True)) if self.settings.query_string
                 else None)
        return view_keys(self.settings.name, prefix + self.settings.source_part(self.runtime),
                         path, query, custom, self.settings.hash_of(self.runtime))

    async def _lookup(
        self, keys: EntryKeys
    ) -> tuple[StoredResponse | None, State, tuple[str | None, ...], str]:
        stored, tokens = await read(self.client, keys.entry, keys.scopes)
        entry, state, variant = await self._resolve(keys, stored, tokens)
        return entry, state, tokens, variant

    #: The variants the entry's Vary marker lists, as last read.
    _variants: tuple[str, ...] = ()

    async def _resolve(
        self, keys: EntryKeys, stored: Any, tokens: tuple[str | None, ...]
    ) -> tuple[StoredResponse | None, State, str]:
        """Follow a Vary marker to this request's variant; check the entry's tokens."""
        variant = keys.entry
        if isinstance(stored, dict) and _VARY in stored:
            self._variants = tuple(str(known) for known in stored.get(_VARIANTS, ()))
            variant = keys.variant(vary_pairs(stored[_VARY], self.headers))
            stored = await self.client.get(variant)
        value, state = unwrap(stored, tokens)
        if state == "stale":
            self._variants = ()  # the listed ones are stale too: they count again once stored
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
        if isinstance(self.returned, CachedResponse) and self.returned.cache_timeout:
            # Its tokens were made for the view's timeout; if they expire first, the entry
            # is only recomputed sooner.
            self.lifetime = float(self.returned.cache_timeout)
        entry = await StoredResponse.snapshot(response, self.lifetime)
        vary = tuple(vary_pairs(entry.vary, self.headers))
        if not await self._storable(response) or not self._variant_fits(keys, vary):
            return _Produced(entry, vary)
        stored = await self._store(keys, entry, vary, tokens)
        return _Produced(entry, vary, stored=stored, store_failed=not stored)

    async def _run_view(self) -> ResponseTypes:
        try:
            result = await current_app.ensure_async(self.function)(*self.args, **self.kwargs)
        except HTTPException as error:
            # As Quart would handle it, but here, so that a 404 or a 410 can be cached.
            result = await current_app.handle_user_exception(error)
        self.returned = result
        return await current_app.make_response(result)

    async def _storable(self, response: ResponseTypes) -> bool:
        if self.settings.response_filter is not None:
            # Flask-Caching's meaning: what the view returned (`lambda r: r[1] < 400` for a
            # (body, status) view), which is the response for a view returning one.
            return bool(await call_user(self.settings.response_filter, self.returned))
        return response.status_code in STORABLE_STATUSES

    async def _store(
        self, keys: EntryKeys, entry: StoredResponse,
        vary: tuple[tuple[str, str | None], ...], tokens: Tokens,
    ) -> bool:
        payload = wrap(entry.to_value(), tokens)
        try:
            if not vary:
                return await self.client.set(keys.entry, payload, timeout=self.lifetime)
            variant = keys.variant(vary)
            listed = [known for known in self._variants if known != variant]
            marker = {_VARY: list(entry.vary), _VARIANTS: [*listed, variant]}
            written = await self.client.set_many(
                {keys.entry: marker, variant: payload}, timeout=self.lifetime
            )
            return len(written) == 2
        except Exception:
            logger.exception("cache failed storing %s; served uncached", self.settings.name)
            return False

    def _variant_fits(self, keys: EntryKeys, vary: tuple[tuple[str, str | None], ...]) -> bool:
        """Whether this Vary combination may be stored (one already listed always may)."""
        return (not vary or len(self._variants) < MAX_VARIANTS
                or keys.variant(vary) in self._variants)

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
        if self.settings.response_hit_indication and status.get("hit"):
            response.headers["hit_cache"] = "True"  # Flask-Caching's header
        self.record(outcome)
        return response
