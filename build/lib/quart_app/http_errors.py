"""Every error reaches the client as a short JSON body; never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from .cache import CacheUnavailable
from .db import DuplicateId, StoreUnavailable
from .request_id import current_request_id

log = logging.getLogger("quart_app.db")


def register_error_handlers(app: Quart) -> None:
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(DuplicateId, duplicate_id)
    app.register_error_handler(StoreUnavailable, store_unavailable)
    app.register_error_handler(CacheUnavailable, cache_unavailable)
    # Not a handler for Exception: that would hide errors from got_request_exception. Quart
    # turns an unhandled exception into InternalServerError, which lands here.
    app.register_error_handler(InternalServerError, internal_error)


def error_response(status: int, error: str, message: str, **extra: Any) -> Response:
    response = jsonify({"error": error, "message": message, **extra})
    response.status_code = status
    return response


async def http_error(error: HTTPException) -> Response:
    response = error_response(
        error.code or 500, (error.name or "error").lower().replace(" ", "_"),
        error.description or "",
    )
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


async def duplicate_id(error: DuplicateId) -> Response:
    return error_response(409, "duplicate_id", str(error))


async def store_unavailable(error: StoreUnavailable) -> Response:
    # The message never names hosts, ports or files; the driver's detail may, so it goes to
    # the log (here, unless the outage's first request logged it already) and, with DEBUG,
    # to the client.
    if error.detail and not error.logged:
        log.warning("%s [request %s]: %s", error, current_request_id(), error.detail)
    response = error_response(503, "database_unavailable", error.for_client(current_app.debug))
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def cache_error_message(error: CacheUnavailable) -> str:
    """What a client may read of a cache failure: "redis unreachable: Error 111 connecting
    to host:port" loses the driver's words (logged by the cache client) unless in debug."""
    return str(error) if current_app.debug else str(error).split(":", 1)[0]


async def cache_unavailable(error: CacheUnavailable) -> Response:
    # Only with CACHE_IGNORE_ERRORS = false; by default an outage is a cache miss.
    response = error_response(503, "cache_unavailable", cache_error_message(error))
    response.headers["Retry-After"] = "5"
    return response


async def internal_error(error: InternalServerError) -> Response:
    return error_response(
        500, "internal_server_error",
        "the server hit an unexpected error; quote the request id when reporting it",
        request_id=current_request_id(),
    )
