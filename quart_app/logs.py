"""Log lines that name their request: the request id and route on every record, text or JSON.

Every record gets `request_id` and `route` attributes from the request being handled (see
`request_id.py`; "-" outside a request) through the log record factory rather than a
logging.Filter: a filter on the `quart_app` logger does not see records of its child loggers,
and one on a handler misses the handlers somebody else installed (pytest's, a deployment's
logging config). The factory tags every record, whoever logs it and wherever it goes.

`LOG_FORMAT = "json"` writes one JSON object per line for log shippers, through
python-json-logger: it already handles what a few lines of `json.dumps` would get wrong
(exceptions and stack traces as text, values JSON cannot encode, `extra=` fields).
"""

from __future__ import annotations

import logging
from typing import Any

from .request_id import current_trace

TEXT_FORMAT = ("[%(asctime)s] [%(request_id)s] [%(process)d] [%(levelname)s] "
               "%(name)s: %(message)s")
JSON_FIELDS = ("levelname", "name", "message", "request_id", "route")
JSON_RENAMED = {"levelname": "level", "name": "logger", "exc_info": "exception"}
#: hypercorn's default access log line, followed by the request id the app answered with.
ACCESS_LOG_FORMAT = ('%(h)s %(l)s %(l)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" '
                     '%({x-request-id}o)s')
NO_REQUEST = "-"


class _QuartAppHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler quart_app installs itself, told apart from anybody else's."""


def install_record_factory() -> None:
    """Tag every log record of this process with its request (once, however many apps)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "quart_app_tags_requests", False):
        return

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        trace = current_trace()
        record.request_id = NO_REQUEST if trace is None else trace.request_id
        record.route = NO_REQUEST if trace is None or trace.route is None else trace.route
        return record

    make_record.quart_app_tags_requests = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter  # only a worker logging JSON needs it

        return JsonFormatter(list(JSON_FIELDS), rename_fields=JSON_RENAMED, timestamp="time")
    return logging.Formatter(TEXT_FORMAT, defaults={"request_id": NO_REQUEST})


def configure_logging(level: str, log_format: str) -> None:
    install_record_factory()
    logger = logging.getLogger("quart_app")
    logger.setLevel(level)
    ours = [handler for handler in logger.handlers if isinstance(handler, _QuartAppHandler)]
    if ours:
        ours[0].setFormatter(make_formatter(log_format))
        return
    # Our own handler only when nobody (pytest, the user's logging config) has set one up;
    # on the root logger it would also print hypercorn's lines a second time.
    if not logging.getLogger().handlers and not logger.handlers:
        handler = _QuartAppHandler()
        handler.setFormatter(make_formatter(log_format))
        logger.addHandler(handler)
