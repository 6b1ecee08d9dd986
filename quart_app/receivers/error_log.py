"""The tutorial's exception log: got_request_exception, with the method, path and request id."""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart, request
from quart.signals import got_request_exception

from ..dispatch import receiver
from ..request_id import current_request_id

logger = logging.getLogger("quart_app.errors")


def connect(app: Quart) -> None:
    @receiver(got_request_exception, app, dispatch_uid="error_log.got_request_exception")
    async def log_exception(sender: Quart, exception: BaseException, **extra: Any) -> None:
        logger.error(
            "unhandled %s on %s %s [request %s]", type(exception).__name__, request.method,
            request.path, current_request_id(),
            exc_info=(type(exception), exception, exception.__traceback__),
        )
