"""Helpers more than one test module needs (kept small; fixtures live in conftest.py)."""

from __future__ import annotations

import time
from typing import Any

from quart_app.cache import Cache
from quart_app.cache.backends import BoundedMemoryBackend, PrefixedRedisBackend


async def seconds_left(cache: Cache, key: str) -> float | None:
    """How long `key` (as given to `cache.set`) has left in the current app's backend."""
    client = cache.client
    full_key = client.settings.key_prefix + key
    backend: Any = client.backend
    if isinstance(backend, PrefixedRedisBackend):
        milliseconds = await backend.client.pttl(full_key)
        return None if milliseconds < 0 else milliseconds / 1000
    assert isinstance(backend, BoundedMemoryBackend)
    _, expires_at = backend._entries[full_key]
    return None if expires_at == float("inf") else expires_at - time.monotonic()
