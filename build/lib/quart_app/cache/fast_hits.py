"""Current hits of cached views answered in front of Quart, at the ASGI layer.

A hit of a `cached` view needs only the entry and its generation tokens (one read), yet going
through Quart costs a request context, the session, before/after hooks, the signals and the
response machinery: most of a hit's time (bench/README.md). `FastHits` wraps the app's ASGI
callable and, for a GET or HEAD whose route is a `cached` view it can key from the URL alone,
reads the entry exactly as the decorator would and sends it with the decorator's headers
(`ETag`/304, `Age`, `Cache-Control`, `Cache-Status`, `X-Request-ID`).

Anything it cannot prove to be a current hit goes to Quart unchanged: a miss, a stale or
unreadable entry, a `Vary` entry, a view with `unless`, `forced_update`, a callable
`key_prefix` or `make_cache_key` (they need the request), `Cache-Control: no-cache` when the
app honours it, a cache fault, or any error here. So read-your-writes holds as on the
decorator's path: an invalidation changes the tokens both paths check.

What a fast hit does not do: Quart's request signals (`request_started`,
`request_finished`, ...) are not sent and no `before_request`/`after_request` hook runs.
Visits are counted by `on_hit` instead. `CACHE_FAST_HITS = false` sends every request
through Quart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Scope,
)
from quart import Quart
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.routing import MapAdapter, RequestRedirect

from .generations import read, unwrap
from .keys import sorted_query, view_keys
from .responses import StoredResponse
from .runtime import CacheRuntime
from .validators import (
    NOT_MODIFIED_KEEPS,
    VALIDATED_STATUSES,
    cache_status,
    client_has,
    freshness_headers,
)
from .views import CachedView

logger = logging.getLogger("quart_app.cache")

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Any]
#: Given the URL rule of a hit, e.g. to count a visit.
HitListener = Callable[[str], None]
#: The current request's id (set by the request-id middleware around this one), if any.
RequestIdOf = Callable[[], str | None]

_METHODS = frozenset({"GET", "HEAD"})
# Paths whose route was matched, and what it is: most requests repeat a few paths, and a
# route match costs more than the rest of a miss here. Emptied when full (paths can be many).
_MATCHES_KEPT = 4096
_VARY = "vary"


@dataclass(frozen=True, slots=True)
class _Route:
    """A route that is a cached view the fast path can key from the URL alone."""

    settings: CachedView
    key_prefix: str
    rule: str
    #: The view function's attributes (`cache_runtime_for`, an assigned `make_cache_key`).
    attributes: dict[str, Any]


class FastHits:
    """ASGI middleware: `app.asgi_app = FastHits(app, app.asgi_app, ...)`."""

    def __init__(
        self, app: Quart, inner: ASGIApp, request_id: RequestIdOf,
        on_hit: HitListener | None = None,
    ) -> None:
        self.app = app
        self.inner = inner
        self.request_id = request_id
        self.on_hit = on_hit
        self._adapter: MapAdapter | None = None
        self._matches: dict[tuple[str, str], _Route | None] = {}

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http" and scope["method"] in _METHODS:
            try:
                answer = await self._hit(scope)
            except Exception:
                logger.debug("fast hit path failed; Quart answers", exc_info=True)
                answer = None
            if answer is not None:
                status, headers, body = answer
                await send(HTTPResponseStartEvent(type="http.response.start", status=status,
                                                  headers=headers))
                await send(HTTPResponseBodyEvent(type="http.response.body", body=body,
                                                 more_body=False))
                return
        await self.inner(scope, receive, send)

    def _match(self, path: str, method: str) -> _Route | None:
        key = (path, method)
        try:
            return self._matches[key]
        except KeyError:
            pass
        if len(self._matches) >= _MATCHES_KEPT:
            self._matches.clear()
        matched = self._matches[key] = self._match_route(path, method)
        return matched

    def _match_route(self, path: str, method: str) -> _Route | None:
        if self._adapter is None:
            if self.app.url_map.host_matching:
                return None
            self._adapter = self.app.url_map.bind("")
        try:
            rule, _ = self._adapter.match(path, method, return_rule=True)
        except (HTTPException, RequestRedirect):
            return None
        view = self.app.view_functions.get(rule.endpoint)
        attributes = vars(view) if view is not None else {}
        settings = attributes.get("cached")
        if (not isinstance(settings, CachedView) or settings.unless is not None
                or settings.forced_update is not None or settings.make_cache_key is not None
                or settings.is_stale is not None or settings.response_hit_indication
                or not isinstance(settings.key_prefix, str)):
            return None
        return _Route(settings, settings.key_prefix, rule.rule, attributes)

    async def _hit(self, scope: HTTPScope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        path = str(scope["path"])
        if scope.get("root_path") or not path.startswith("/"):
            return None
        route = self._match(path, scope["method"])
        if route is None or route.attributes.get("make_cache_key") is not route.attributes.get(
                "default_make_cache_key"):
            return None  # a make_cache_key assigned to the view needs the request
        runtime_for = route.attributes.get("cache_runtime_for")
        if runtime_for is None:
            return None
        try:
            runtime: CacheRuntime = runtime_for(self.app)
        except RuntimeError:  # the app is not serving (yet, or any more)
            return None
        settings, key_prefix, rule = route.settings, route.key_prefix, route.rule
        request_headers = Headers(
            [(name.decode("latin1"), value.decode("latin1")) for name, value in scope["headers"]]
        )
        if runtime.honor_no_cache and "no-cache" in request_headers.get("Cache-Control", ""):
            return None
        query = None
        if settings.query_string:
            # As werkzeug parses `request.args`, so both paths build the same key.
            query = sorted_query(parse_qsl(scope["query_string"].decode(),
                                           keep_blank_values=True,
                                           errors="werkzeug.url_quote"))
        keys = view_keys(settings.name, key_prefix.replace("%s", path)
                         + settings.source_part(runtime), path, query, None,
                         settings.hash_of(runtime))
        stored, tokens = await read(runtime.client, keys.entry, keys.scopes)
        if isinstance(stored, dict) and _VARY in stored:
            return None
        value, state = unwrap(stored, tokens)
        entry = StoredResponse.from_value(value) if state == "hit" else None
        if entry is None:
            return None
        runtime.stats.record(settings.name, "hit")
        if self.on_hit is not None:
            self.on_hit(rule)
        return self._answer(entry, request_headers, scope["method"] == "HEAD")

    def _answer(
        self, entry: StoredResponse, request_headers: Headers, head: bool
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        now = time.time()
        remaining = entry.remaining(now)
        headers = [*entry.headers,
                   *freshness_headers(entry.age(now), remaining,
                                      entry.header("Cache-Control") is not None),
                   ("Cache-Status", cache_status(hit=True, ttl=remaining))]
        status, body = entry.status, entry.body
        if status in VALIDATED_STATUSES and client_has(request_headers, entry.header("ETag")):
            status, body = 304, b""
            headers = [(name, text) for name, text in headers
                       if name.lower() in NOT_MODIFIED_KEEPS]
        else:
            headers.append(("Content-Length", str(len(body))))
        request_id = self.request_id()
        if request_id is not None:
            headers.append(("X-Request-ID", request_id))
        encoded = [(name.lower().encode("latin1"), text.encode("latin1"))
                   for name, text in headers]
        return status, encoded, b"" if head else body
