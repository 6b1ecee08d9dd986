"""The tutorial's exception log: got_request_exception, with the method, path and request id.

It is the one log line of a 500: Quart logs the same exception once more right after the
signal ("Exception on request ...", without the request id the client is shown), so while
this receiver is connected Quart's line is skipped for the exceptions it logged. Quart's
other uses of `log_exception` (background tasks, serving) are untouched.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from types import TracebackType
from typing import Any

from quart import Quart, request
from quart.signals import got_request_exception

from ..dispatch import receiver
from ..request_id import current_request_id

logger = logging.getLogger("quart_app.errors")

# Exceptions logged here and not yet seen by Quart's log_exception. Quart skips that call
# when it re-raises (PROPAGATE_EXCEPTIONS, debug), so the record is bounded.
_MAX_PENDING = 64

ExcInfo = tuple[type, BaseException, TracebackType] | tuple[None, None, None]


def connect(app: Quart) -> None:
    logged: OrderedDict[int, BaseException] = OrderedDict()

    @receiver(got_request_exception, app, dispatch_uid="error_log.got_request_exception")
    async def log_exception(sender: Quart, exception: BaseException, **extra: Any) -> None:
        logger.error(
            "unhandled %s on %s %s [request %s]", type(exception).__name__, request.method,
            request.path, current_request_id(),
            exc_info=(type(exception), exception, exception.__traceback__),
        )
        logged[id(exception)] = exception  # held, so its id is not reused meanwhile
        while len(logged) > _MAX_PENDING:
            logged.popitem(last=False)

    quart_log_exception = app.log_exception

    def log_unless_logged(exception_info: ExcInfo) -> None:
        exception = exception_info[1]
        if exception is not None and logged.pop(id(exception), None) is exception:
            return
        quart_log_exception(exception_info)

    app.log_exception = log_unless_logged  # type: ignore[method-assign]
