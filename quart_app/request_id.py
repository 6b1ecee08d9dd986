"""A request id on every request: taken from `X-Request-ID` when sane, else made; echoed back.

Logs of a failing request carry it, and so does the client's 500 body, so a user's report
can be matched to the server's log line.
"""

from __future__ import annotations

import re
import uuid

from quart import Quart, Response, g, has_request_context, request

HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def current_request_id() -> str | None:
    if not has_request_context():
        return None
    request_id: str | None = g.get("request_id")
    return request_id


def request_id_from(given: str) -> str:
    """The id of a request that sent `given` as its X-Request-ID: that, if sane, else a new one."""
    return given if _ACCEPTABLE.fullmatch(given) else uuid.uuid4().hex


def init_app(app: Quart) -> None:
    @app.before_request
    async def assign_request_id() -> None:
        g.request_id = request_id_from(request.headers.get(HEADER, ""))

    @app.after_request
    async def echo_request_id(response: Response) -> Response:
        request_id = current_request_id()
        if request_id is not None:
            response.headers[HEADER] = request_id
        return response
