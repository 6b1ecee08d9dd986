"""An acknowledged write is invalidated where readers look, or it is not acknowledged.

A write request (an insert) invalidates the cache before it answers. When Redis does not take
that deletion even after `CacheClient` retried it, other workers reading Redis may serve the
old entries until the deletion is made again (as soon as Redis answers). So the request must
not be answered as a plain success: its 2xx becomes a 503 with `Retry-After` that says the
write *is* stored and reads may be stale until then. The client learns the truth either way.
The same holds for a signal-bus message that could not be published: the other processes'
memory caches and local tiers were not told (the bus calls `note_undelivered`).

The record lives in a context variable holding a mutable list, set when a request starts:
receivers run in copies of the request's context (tasks), and a copy shares the same list.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from weakref import WeakSet

from quart import Quart, Response, jsonify

_undelivered: ContextVar[list[str] | None] = ContextVar("quart_app_cache_undelivered",
                                                        default=None)


def note_undelivered(what: str) -> None:
    """An invalidation (of the key, or over the bus channel, `what`) did not reach Redis."""
    record = _undelivered.get()
    if record is not None:
        record.append(what)


_guarded: WeakSet[Quart] = WeakSet()


def guard_writes(app: Quart, retry_after: float) -> None:
    """Turn a write's 2xx into a 503 when one of its invalidations did not reach Redis.

    Once per app, however many `Cache` objects it has."""
    if app in _guarded:
        return
    _guarded.add(app)

    # Every method: the tutorial's insert is a GET (`/info?id=...`).
    @app.before_request
    async def track_invalidations() -> None:
        _undelivered.set([])

    @app.after_request
    async def refuse_unconfirmed_write(response: Response) -> Response:
        record = _undelivered.get()
        if not record or not 200 <= response.status_code < 300:
            return response
        refused = jsonify({
            "error": "cache_unavailable", "stored": True,
            "message": "the write is stored, but the caches other workers read could not be "
                       "invalidated: they may serve the previous data until the cache "
                       "(Redis or memcached) answers again (then they are); do not repeat "
                       "the write",
        })
        refused.status_code = 503
        refused.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        if "Location" in response.headers:
            refused.headers["Location"] = response.headers["Location"]
        return refused
