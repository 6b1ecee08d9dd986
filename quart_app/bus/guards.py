"""What the bus does for the caches of this process: keep them from serving while
invalidations from other processes could be missed.

A memory cache (SimpleCache), whose invalidations from other processes come as signals over
the bus, is suspended while the bus is down and cleared before it serves again; so is the
local tier (CACHE_LOCAL), whose evictions come over the bus, and whose own evictions the bus
announces (`evictions`).
"""

from __future__ import annotations

from quart import Quart

from ..cache import CacheClient
from ..cache.local_tier import LocalTier
from ..extensions import cache as app_cache
from .evictions import Evictions
from .transport import Transport


def guard_local_cache(transport: Transport, client: CacheClient) -> None:
    """Keep a per-process cache from serving while invalidations could be missed."""
    client.suspend()  # until the first subscription: a remote insert could land before it
    transport.on_disconnect(client.suspend)
    transport.on_reconnect(client.resume)


def guard_local_tier(transport: Transport, evictions: Evictions, tier: LocalTier) -> None:
    """The local tier serves only while evictions from other processes can reach it."""
    tier.suspend()
    transport.on_disconnect(tier.suspend)
    transport.on_reconnect(tier.resume)
    evictions.tier = tier
    tier.attach(evictions.announce)


def guard_caches(app: Quart, transport: Transport, evictions: Evictions) -> None:
    """Guard `app`'s open cache, before the bus subscribes."""
    client = app_cache.client_for(app)
    # The cache's own settings, which a Cache made with a config of its own may change.
    if client.settings.cache_type == "SimpleCache":
        guard_local_cache(transport, client)
    if client.local is not None:
        guard_local_tier(transport, evictions, client.local)
