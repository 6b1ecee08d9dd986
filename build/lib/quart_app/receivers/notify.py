"""The tutorial's "send an SMS when a row is created", simulated, as a background receiver.

It sleeps `NOTIFY_DELAY` seconds to stand for the SMS gateway, after the response has gone:
a slow notification never delays the insert. Deliveries are counted in the cache
(`stats:notifications_sent`, shown by /api/stats).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from quart import Quart

from ..db import InfoRow
from ..dispatch import receiver
from ..extensions import cache
from ..signals import info_inserted

logger = logging.getLogger("quart_app.notify")

SENT_KEY = "stats:notifications_sent"


def connect(app: Quart) -> None:
    delay = app.config["NOTIFY_DELAY"]

    # One SMS per insert: with the signal bus, only the process that made the insert sends it.
    @receiver(info_inserted, app, dispatch_uid="notify.info_inserted", background=True,
              origin_only=True)
    async def send_notification(sender: Quart, row: InfoRow, **extra: Any) -> None:
        await asyncio.sleep(delay)
        logger.info("notification sent (simulated SMS): info id=%d name=%r", row.id, row.name)
        await cache.client_for(sender).inc(SENT_KEY)
