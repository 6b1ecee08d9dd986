"""Every error reaches the client as a short JSON body; never a traceback."""

from __future__ import annotations

import logging

from quart import Quart, Response, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from .db import DuplicateId, StoreUnavailable

logger = logging.getLogger("quart_app.errors")


def register_error_handlers(app: Quart) -> None:
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(DuplicateId, duplicate_id)
    app.register_error_handler(StoreUnavailable, store_unavailable)
    app.register_error_handler(Exception, unexpected_error)


def error_response(status: int, error: str, message: str) -> Response:
    response = jsonify({"error": error, "message": message})
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
    response = error_response(503, "database_unavailable", str(error))
    response.headers["Retry-After"] = str(error.retry_after)
    return response


async def unexpected_error(error: Exception) -> Response:
    # Quart has already logged the exception and sent got_request_exception.
    return await http_error(InternalServerError("the server hit an unexpected error"))
