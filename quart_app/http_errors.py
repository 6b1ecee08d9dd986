"""Every error reaches the client as a short JSON body; never a traceback."""

from __future__ import annotations

import logging

from quart import Quart, Response, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

logger = logging.getLogger("quart_app.errors")


def register_error_handlers(app: Quart) -> None:
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)


async def http_error(error: HTTPException) -> Response:
    response = jsonify(
        {"error": (error.name or "error").lower().replace(" ", "_"),
         "message": error.description}
    )
    response.status_code = error.code or 500
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


async def unexpected_error(error: Exception) -> Response:
    # Quart has already logged the exception and sent got_request_exception.
    return await http_error(InternalServerError("the server hit an unexpected error"))
