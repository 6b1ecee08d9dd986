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
from collections.abc import Callable, Iterable
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
from werkzeug.exceptions import HTTPException
from werkzeug.routing import MapAdapter, RequestRedirect

from .client import CacheClient
from .generations import recorded
from .keys import EntryKeys, sorted_query, view_keys
from .responses import StoredResponse
from .runtime import CacheRuntime
from .validators import (
    NOT_MODIFIED_KEEPS,
    VALIDATED_STATUSES,
    cache_status,
    client_has_tag,
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
#: Entry keys kept per (path, query): a key is three SHA-256 digests of JSON.
_KEYS_KEPT = 4096
#: Characters of stored text kept decoded (entries and tokens): the same text is the same
#: value, so a hit decodes an entry (JSON, then base64) once, not once per request.
_DECODED_CHARS_KEPT = 4_000_000
_VARY = "vary"
_NO_CACHE = "no-cache"


@dataclass(frozen=True, slots=True)
class _Route:
    """A route that is a cached view the fast path can key from the URL alone."""

    settings: CachedView
    key_prefix: str
    rule: str
    #: The view function's attributes (`cache_runtime_for`, an assigned `make_cache_key`).
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Entry:
    """A stored entry as every hit of it answers: decoded, its fixed headers encoded."""

    tokens: list[str]
    response: StoredResponse
    headers: list[tuple[bytes, bytes]]
    #: The fixed headers a 304 keeps.
    not_modified_headers: list[tuple[bytes, bytes]]
    etag: str | None
    has_cache_control: bool
    content_length: bytes

    @classmethod
    def of(cls, stored: Any) -> _Entry | None:
        """None for what a fast hit cannot answer: no entry, a `Vary` entry, not a response."""
        entry = None if isinstance(stored, dict) and _VARY in stored else recorded(stored)
        response = StoredResponse.from_value(entry[1]) if entry is not None else None
        if entry is None or response is None:
            return None
        headers = _encoded(response.headers)
        return cls(
            tokens=entry[0], response=response, headers=headers,
            not_modified_headers=[(name, text) for name, text in headers
                                  if name.decode("latin1") in NOT_MODIFIED_KEEPS],
            etag=response.header("ETag"),
            has_cache_control=response.header("Cache-Control") is not None,
            content_length=str(len(response.body)).encode("latin1"),
        )


def _encoded(headers: Any) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin1"), text.encode("latin1")) for name, text in headers]


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
        self._keys: dict[tuple[Any, ...], EntryKeys] = {}
        self._decoded: dict[str, Any] = {}
        self._decoded_chars = 0

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
        cache_control, if_none_match = _request_headers(scope["headers"])
        if runtime.honor_no_cache and cache_control is not None and _NO_CACHE in cache_control:
            return None
        keys = self._keys_of(route, runtime, path, scope["query_string"])
        stored, *tokens = await runtime.client.get_many_texts(keys.entry, *keys.scopes)
        entry = self._decode(runtime.client, stored, _Entry.of) if stored is not None else None
        if entry is None or entry.tokens != [
                None if token is None else self._decode(runtime.client, token, _token)
                for token in tokens]:
            return None
        runtime.stats.record(route.settings.name, "hit")
        if self.on_hit is not None:
            self.on_hit(route.rule)
        return self._answer(entry, if_none_match, scope["method"] == "HEAD")

    def _keys_of(self, route: _Route, runtime: CacheRuntime, path: str,
                 query_string: bytes) -> EntryKeys:
        settings = route.settings
        source, hash_method = settings.source_part(runtime), settings.hash_of(runtime)
        memo = (route.rule, settings.name, path,
                query_string if settings.query_string else None, source, hash_method)
        keys = self._keys.get(memo)
        if keys is None:
            query = None
            if settings.query_string:
                # As werkzeug parses `request.args`, so both paths build the same key.
                query = sorted_query(parse_qsl(query_string.decode(), keep_blank_values=True,
                                               errors="werkzeug.url_quote"))
            keys = view_keys(settings.name, route.key_prefix.replace("%s", path) + source,
                             path, query, None, hash_method)
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            self._keys[memo] = keys
        return keys

    def _decode(self, client: CacheClient, text: str, making: Callable[[Any], Any]) -> Any:
        """`making(decoded text)`, made once per text while it is kept."""
        try:
            return self._decoded[text]
        except KeyError:
            pass
        made = making(client.decode(text))
        if self._decoded_chars + len(text) > _DECODED_CHARS_KEPT:
            self._decoded.clear()
            self._decoded_chars = 0
        self._decoded[text] = made
        self._decoded_chars += len(text)
        return made

    def _answer(
        self, entry: _Entry, if_none_match: str | None, head: bool
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        response = entry.response
        now = time.time()
        remaining = response.remaining(now)
        varying = _encoded([*freshness_headers(response.age(now), remaining,
                                               entry.has_cache_control),
                            ("Cache-Status", cache_status(hit=True, ttl=remaining))])
        request_id = self.request_id()
        if request_id is not None:
            varying.append((b"x-request-id", request_id.encode("latin1")))
        if response.status in VALIDATED_STATUSES and if_none_match is not None and (
                client_has_tag(if_none_match, entry.etag)):
            return 304, [*entry.not_modified_headers, *varying], b""
        headers = [*entry.headers, *varying, (b"content-length", entry.content_length)]
        return response.status, headers, b"" if head else response.body


def _request_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    """The request's first Cache-Control and If-None-Match, as the decorator's path reads them
    (werkzeug's `Headers.get`), without building Headers."""
    cache_control = if_none_match = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"cache-control" and cache_control is None:
            cache_control = value.decode("latin1")
        elif lowered == b"if-none-match" and if_none_match is None:
            if_none_match = value.decode("latin1")
    return cache_control, if_none_match


def _token(value: Any) -> str | None:
    return value if isinstance(value, str) else None
