"""message_flashed, logged: the tutorial lists it among Flask's built-in signals."""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart
from quart.signals import message_flashed

from ..dispatch import receiver

logger = logging.getLogger("quart_app.flash")


def connect(app: Quart) -> None:
    @receiver(message_flashed, app, dispatch_uid="flash_log.message_flashed")
    async def log_flash(sender: Quart, message: str, category: str, **extra: Any) -> None:
        logger.info("flashed [%s] %s", category, message)
