"""The signal bus: what one process tells the others, through Redis pub/sub.

With `SIGNALS_BUS_URL` set, the bus carries two protocols over one transport, and guards this
process's caches while it may miss messages:

- `transport`: moves messages (versioned JSON, each from an origin) and reports its health;
  `connections`: how it reaches Redis (one server, the sentinels' master, a cluster's slot).
- `relay`: broadcast signals re-sent to every other process's receivers (`dispatch.Relay`).
- `evictions`: the local tier's evictions, acknowledged by every process.
- `guards`: the memory cache and the local tier serve only while the bus is subscribed.

`SignalBus` puts them together for one app, as its "signal_bus" extension (`bus_of`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from quart import Quart

from ..cache.write_guard import note_undelivered
from .connections import connector
from .evictions import Evictions
from .guards import guard_caches, guard_local_cache, guard_local_tier
from .relay import DELIVERY_QUEUE_SIZE, SignalRelay
from .transport import VERSION, Transport

__all__ = ["DELIVERY_QUEUE_SIZE", "EXTENSION_KEY", "VERSION", "SignalBus", "bus_of",
           "guard_local_cache", "guard_local_tier"]

EXTENSION_KEY = "signal_bus"


def bus_of(app: Quart) -> SignalBus | None:
    """`app`'s signal bus (None: SIGNALS_BUS_URL is not set)."""
    bus: SignalBus | None = app.extensions.get(EXTENSION_KEY)
    return bus


class SignalBus(Transport):
    """One app's bus: its transport, with the relay and the evictions on it.

    `ack_timeout` (CACHE_LOCAL_ACK_TIMEOUT) bounds a publish and an eviction's wait for its
    confirmations; the passwords are the cache's Redis and sentinels' ones."""

    def __init__(self, app: Quart, *, ack_timeout: float, password: str | None = None,
                 sentinel_password: str | None = None) -> None:
        url: str = app.config["SIGNALS_BUS_URL"]
        super().__init__(
            connector(url, timeout=ack_timeout, password=password,
                      sentinel_password=sentinel_password),
            app.config["SIGNALS_BUS_CHANNEL"], timeout=ack_timeout,
            # The write that sent an undelivered message is not acknowledged as seen everywhere.
            on_undelivered=note_undelivered)
        self.url = url
        # Read from this module when the bus is made, so that a test can lower it.
        self.relay = SignalRelay(app, self, queue_size=DELIVERY_QUEUE_SIZE)
        self.evictions = Evictions(self, ack_timeout=ack_timeout)
        self._app = app
        app.extensions[EXTENSION_KEY] = self
        app.while_serving(self._serve)

    # The counts of the parts, as /readyz, /stats and the metrics name them.
    @property
    def published(self) -> int:
        return self.relay.published

    @property
    def delivered(self) -> int:
        return self.relay.delivered

    @property
    def dropped(self) -> int:
        """Messages this process could not handle, and remote signals its receivers missed."""
        return self.malformed + self.relay.dropped

    @property
    def evictions_announced(self) -> int:
        return self.evictions.announced

    @property
    def evictions_unconfirmed(self) -> int:
        return self.evictions.unconfirmed

    async def announce_eviction(self, prefix: str, keys: Sequence[str] | None) -> None:
        await self.evictions.announce(prefix, keys)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {**super().stats(), "published": self.published,
                                 "delivered": self.delivered, "dropped": self.dropped}
        local_tier = self.evictions.stats()
        if local_tier is not None:
            stats["local_tier"] = local_tier
        return stats

    async def _serve(self) -> AsyncGenerator[None, None]:
        guard_caches(self._app, self, self.evictions)
        self.start()
        self.relay.start()
        yield
        await self.stop()
        await self.relay.stop()
        await self.evictions.stop()
        await self.close()
