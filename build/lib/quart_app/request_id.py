"""A request id on every request: taken from `X-Request-ID` when sane, else made; echoed back.

Logs of a failing request carry it, and so does the client's 500 body, so a user's report
can be matched to the server's log line. The id lives in a context variable set by an ASGI
middleware, before Quart sees the request: every log line written while the request is
handled (its `request_started` receivers, Quart's own error log, its thread-pool calls) can
read it, and background tasks started by the request inherit it, since asyncio copies the
context into each task it creates.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart, Response, request

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._-]{1,64}")

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]


@dataclass(slots=True)
class RequestTrace:
    """What log lines and metrics say about the request they belong to."""

    request_id: str
    #: The URL rule that matched (`/api/info/<int:id>`), once routing has run; None before,
    #: and for a path no rule matches.
    route: str | None = None


_current: ContextVar[RequestTrace | None] = ContextVar("quart_app_request", default=None)


def current_trace() -> RequestTrace | None:
    """The request being handled, or the one whose background task this is; else None."""
    return _current.get()


def current_request_id() -> str | None:
    trace = _current.get()
    return None if trace is None else trace.request_id


class RequestIdMiddleware:
    """Gives each HTTP and websocket request its id, around the whole of Quart's handling."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        token = _current.set(RequestTrace(_request_id_from(scope["headers"])))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


def _request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == _HEADER_KEY:
            given = value.decode("latin-1")
            if _ACCEPTABLE.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


def init_app(app: Quart) -> None:
    app.asgi_app = RequestIdMiddleware(app.asgi_app)  # type: ignore[method-assign]

    @app.before_request
    async def note_route() -> None:
        trace = _current.get()
        if trace is not None and request.url_rule is not None:
            trace.route = request.url_rule.rule

    @app.after_request
    async def echo_request_id(response: Response) -> Response:
        request_id = current_request_id()
        if request_id is not None:
            response.headers[HEADER] = request_id
        return response
