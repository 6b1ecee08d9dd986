"""The `Cache` extension: Flask-Caching's `cache` object for Quart apps.

`cache = Cache()` lives at module level so views can import it; `cache.init_app(app)` gives
each app its own `CacheClient`, opened in `before_serving` and closed in `after_serving`.
Calls made inside an app context go to that app's client, so two apps in one process never
share entries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from quart import Quart, current_app

from .client import CacheClient, CacheSettings, CacheUnavailable

EXTENSION_KEY = "cache"

logger = logging.getLogger("quart_app.cache")


class Cache:
    def __init__(self, app: Quart | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart) -> None:
        settings = CacheSettings.from_config(app.config)
        holder: dict[str, CacheClient] = {}
        app.extensions[EXTENSION_KEY] = holder

        @app.before_serving
        async def open_cache() -> None:
            # Connections are made on first use: an unreachable Redis must not stop start-up.
            holder["client"] = CacheClient(settings)

        @app.after_serving
        async def close_cache() -> None:
            client = holder.pop("client", None)
            if client is not None:
                await client.close()
                logger.info("cache closed (%s)", settings.cache_type)

    @property
    def client(self) -> CacheClient:
        """The current app's client (needs an app context while the app is serving)."""
        return self.client_for(current_app)

    @staticmethod
    def client_for(app: Quart) -> CacheClient:
        """`app`'s client, for code that is handed the app (signal receivers get it as sender)."""
        client = app.extensions[EXTENSION_KEY].get("client")
        if client is None:
            raise RuntimeError("the cache is not open: the app is not serving")
        return client  # type: ignore[no-any-return]

    async def get(self, key: str, default: Any = None) -> Any:
        return await self.client.get(key, default)

    async def set(self, key: str, value: Any, timeout: int | float | None = None) -> bool:
        return await self.client.set(key, value, timeout)

    async def add(self, key: str, value: Any, timeout: int | float | None = None) -> bool:
        return await self.client.add(key, value, timeout)

    async def delete(self, key: str) -> bool:
        return await self.client.delete(key)

    async def has(self, key: str) -> bool:
        return await self.client.has(key)

    async def clear(self) -> bool:
        return await self.client.clear()

    async def get_many(self, *keys: str) -> list[Any]:
        return await self.client.get_many(*keys)

    async def get_dict(self, *keys: str) -> dict[str, Any]:
        return await self.client.get_dict(*keys)

    async def set_many(
        self, mapping: Mapping[str, Any], timeout: int | float | None = None
    ) -> list[str]:
        return await self.client.set_many(mapping, timeout)

    async def delete_many(self, *keys: str) -> list[str]:
        return await self.client.delete_many(*keys)

    async def inc(self, key: str, delta: int = 1) -> int | None:
        return await self.client.inc(key, delta)

    async def dec(self, key: str, delta: int = 1) -> int | None:
        return await self.client.dec(key, delta)


__all__ = ["Cache", "CacheUnavailable"]
