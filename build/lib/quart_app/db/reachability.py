"""Whether a database answered last time: one log line per outage and one per recovery."""

from __future__ import annotations

import logging

from .errors import StoreUnavailable

log = logging.getLogger("quart_app.db")


class Reachability:
    def __init__(self, display_url: str, retry_after: int) -> None:
        self.display_url = display_url
        self.retry_after = retry_after
        self.reachable: bool | None = None  # None: not tried yet

    def up(self) -> None:
        if self.reachable is False:
            log.info("database %s is reachable again", self.display_url)
        self.reachable = True

    def down(self, reason: str) -> StoreUnavailable:
        """Note an outage (logged once) and give the error the request should raise."""
        if self.reachable is not False:
            log.warning("database %s is unavailable: %s; trying again on the next request",
                        self.display_url, reason)
        self.reachable = False
        return StoreUnavailable("database unavailable", retry_after=self.retry_after,
                                detail=reason, logged=True)
