"""The HTTP side of a cached response: ETag and 304, freshness headers, Cache-Status.

- `ETag` is strong and derived from the content (status, type, encoding, body), so every
  worker gives the same response the same tag.
- `If-None-Match` naming it (or `*`) turns a 200/203 into a 304 with no body.
- `Age` and `Cache-Control: max-age` tell downstream caches how old the entry is and how long
  it still lives here; a `Cache-Control` the view set itself is left alone.
- `Cache-Status` (RFC 9211) says what this cache did: `quart_app; hit; ttl=42`,
  `quart_app; fwd=miss; stored`, `quart_app; fwd=stale; stored`, ...
"""

from __future__ import annotations

import hashlib

from quart.typing import ResponseTypes
from werkzeug.datastructures import Headers
from werkzeug.http import parse_cache_control_header, parse_etags, unquote_etag

CACHE_NAME = "quart_app"

#: Statuses that carry a representation a validator can name.
VALIDATED_STATUSES = frozenset({200, 203})

# What a 304 keeps (RFC 9110, 15.4.5), besides our own Age and Cache-Status.
NOT_MODIFIED_KEEPS = frozenset({
    "cache-control", "content-location", "date", "etag", "expires", "vary", "age",
    "cache-status",
})


def strong_etag(status: int, content_type: str | None, encoding: str | None, body: bytes) -> str:
    """A quoted strong ETag: 128 bits of SHA-256 over the representation."""
    content = hashlib.sha256(f"{status}\n{content_type}\n{encoding}\n".encode())
    content.update(body)
    return f'"{content.hexdigest()[:32]}"'


def client_has(request_headers: Headers, etag: str | None) -> bool:
    """Whether the request's If-None-Match names `etag` (compared weakly, as RFC 9110 says)."""
    return client_has_tag(request_headers.get("If-None-Match"), etag)


def client_has_tag(if_none_match: str | None, etag: str | None) -> bool:
    """Whether an If-None-Match value names `etag` (compared weakly, as RFC 9110 says)."""
    if etag is None or if_none_match is None:
        return False
    tags = parse_etags(if_none_match)
    return tags.star_tag or tags.contains_weak(unquote_etag(etag)[0] or "")


def make_not_modified(response: ResponseTypes) -> None:
    """Turn a full response into its 304: no body, only the headers a 304 may carry."""
    response.status_code = 304
    response.set_data(b"")
    for name in {name for name, _ in response.headers.items()}:
        if name.lower() not in NOT_MODIFIED_KEEPS:
            del response.headers[name]


def no_cache_requested(request_headers: Headers) -> bool:
    """Whether the request says `Cache-Control: no-cache`."""
    directives = parse_cache_control_header(request_headers.get("Cache-Control"))
    return bool(directives.no_cache)


def freshness_headers(
    age: int, remaining: int | None, has_cache_control: bool
) -> list[tuple[str, str]]:
    """`Age`, and `max-age` for the remaining lifetime unless the view chose its own."""
    headers = [("Age", str(age))]
    if remaining is not None and not has_cache_control:
        headers.append(("Cache-Control", f"max-age={remaining}"))
    return headers


def cache_status(
    *, hit: bool = False, fwd: str | None = None, ttl: int | None = None,
    stored: bool = False, collapsed: bool = False, detail: str | None = None,
) -> str:
    """One Cache-Status member for this cache (RFC 9211, section 2)."""
    parts = [CACHE_NAME]
    if hit:
        parts.append("hit")
    if fwd is not None:
        parts.append(f"fwd={fwd}")
    if ttl is not None:
        parts.append(f"ttl={ttl}")
    if stored:
        parts.append("stored")
    if collapsed:
        parts.append("collapsed")
    if detail is not None:
        parts.append(f"detail={detail}")
    return "; ".join(parts)
