"""A view's response as a cache entry: which ones may be stored, and the stored form.

An entry is the status, the headers and the body, as plain values in the cache's tagged
JSON (never pickle), so every worker can read what another stored and nothing read back can
execute code. Headers that belong to one request or one connection are not kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from quart import Response
from quart.typing import ResponseTypes
from quart.wrappers.response import DataBody
from werkzeug.datastructures import Headers

from .keys import vary_names
from .validators import VALIDATED_STATUSES, strong_etag

#: What `cached` stores by default (RFC 9111's heuristically cacheable statuses we produce).
STORABLE_STATUSES = frozenset({200, 203, 301, 404, 410})

_NOT_STORED = frozenset({
    "age", "cache-status", "content-length", "date", "set-cookie",
    # hop-by-hop: they describe one connection, not the response
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade",
})


class CachedResponse(Response):
    """Flask-Caching's `CachedResponse`: a cached view returns it to give this response its
    own lifetime in the cache (`CachedResponse(response, timeout=30)`).

    The lifetime is kept as `cache_timeout`: Quart's Response already has a `timeout` (how
    long its body may take to send).
    """

    def __init__(self, response: Response, timeout: float | None) -> None:
        # Adopt the response as it is (headers, status, body) rather than rebuild it.
        self.__dict__ = response.__dict__
        self.cache_timeout = timeout


def refusal(response: ResponseTypes) -> str | None:
    """Why `response` must not be handed to another request, or None when it may be."""
    if not isinstance(response, Response) or not isinstance(response.response, DataBody):
        return "streamed"  # its body cannot be read without consuming it
    if "Set-Cookie" in response.headers:
        return "set-cookie"  # one client's session must never reach another
    if vary_names(response.headers.getlist("Vary")) is None:
        return "vary-star"
    if response.cache_control.private or response.cache_control.no_store:
        return "private"
    return None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response as a cache entry: status, headers and body, and when it was stored."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: When it was stored (wall clock, so every worker computes the same Age).
    stored_at: float
    #: Seconds it lives in the cache; 0 means until it is invalidated or evicted.
    lifetime: float

    @classmethod
    async def snapshot(cls, response: Response, lifetime: float) -> StoredResponse:
        """The response as an entry, with a strong ETag for a 200/203 that has none."""
        body = await response.get_data(as_text=False)
        headers = [(name, value) for name, value in response.headers.items()
                   if name.lower() not in _NOT_STORED]
        if response.status_code in VALIDATED_STATUSES and "ETag" not in response.headers:
            etag = strong_etag(response.status_code, response.headers.get("Content-Type"),
                               response.headers.get("Content-Encoding"), body)
            headers.append(("ETag", etag))
        return cls(response.status_code, tuple(headers), body, time.time(), lifetime)

    @classmethod
    def from_value(cls, value: Any) -> StoredResponse | None:
        """The entry back from the cache; None for anything not written by `to_value`."""
        try:
            return cls(
                status=int(value["status"]),
                headers=tuple((str(name), str(text)) for name, text in value["headers"]),
                body=bytes(value["body"]),
                stored_at=float(value["stored_at"]),
                lifetime=float(value["lifetime"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def to_value(self) -> dict[str, Any]:
        """The entry as plain values, for the cache's tagged JSON."""
        return {
            "status": self.status, "headers": [list(header) for header in self.headers],
            "body": self.body, "stored_at": self.stored_at, "lifetime": self.lifetime,
        }

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((text for key, text in self.headers if key.lower() == wanted), None)

    @property
    def vary(self) -> tuple[str, ...]:
        """The request headers this response depends on (lowercased, sorted)."""
        return vary_names(text for name, text in self.headers if name.lower() == "vary") or ()

    def age(self, now: float) -> int:
        """Whole seconds since it was stored (clocks of two hosts may differ: never negative)."""
        return int(max(0.0, now - self.stored_at))

    def remaining(self, now: float) -> int | None:
        """Whole seconds left in the cache (Age plus this is the lifetime); None: no expiry."""
        if not self.lifetime:
            return None
        return max(0, math.floor(self.lifetime) - self.age(now))

    def to_response(self, extra_headers: list[tuple[str, str]] | None = None) -> Response:
        """A new Response for one request (each request may change its own headers)."""
        headers = Headers([*self.headers, *(extra_headers or ())])
        return Response(self.body, status=self.status, headers=headers)
