"""Request bodies a view may stream past MAX_CONTENT_LENGTH, with backpressure.

Quart's ASGI connection moves every body message into the request's `Body` as soon as the
server has it, whether or not the view reads yet, and answers 413 once the bytes waiting
there pass MAX_CONTENT_LENGTH (or the declared Content-Length does). That is right for a
body read whole, but a view that streams a body larger than MAX_CONTENT_LENGTH (an NDJSON
bulk load) needs the opposite: no bound on the total, and the bytes not yet read bounded,
the rest left in the server's queue and the socket rather than in this process's memory.

So the body here waits for its reader's choice. Awaited whole (`await request.body`,
`get_data`, `get_json`): MAX_CONTENT_LENGTH applies as in Quart. Iterated (`async for`):
no total bound, and receiving pauses while MAX_CONTENT_LENGTH bytes wait unread. Until
the reader chooses, receiving pauses at MAX_CONTENT_LENGTH unread bytes too, so neither
choice finds bytes it would have had to refuse.

A view that answers before the body has all arrived (a 413 past a row limit) leaves the
rest waiting in hypercorn's queue, which then blocks the close of the stream: the server
would never close the connection, and a client still sending would never read the answer.
So the rest is then received and dropped in the background until it has all arrived or the
server reports the stream closed (at most `DRAIN_SECONDS`), as Quart's own receiver would
have done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable
from quart import Quart, Request
from quart.asgi import ASGIHTTPConnection
from quart.utils import cancel_tasks, raise_task_exceptions
from quart.wrappers.request import Body
from werkzeug.exceptions import RequestEntityTooLarge

#: Most seconds the rest of a body is received and dropped after its view has answered.
DRAIN_SECONDS = 30.0

_draining: set[asyncio.Task[None]] = set()


class StreamableBody(Body):
    """Quart's `Body`, judged by MAX_CONTENT_LENGTH only when awaited whole."""

    def __init__(
        self, expected_content_length: int | None, max_content_length: int | None
    ) -> None:
        # The declared length is judged when the body is awaited, not before it is read.
        super().__init__(None, max_content_length)
        self._expected_length = expected_content_length
        self._limit = max_content_length
        self._whole: bool | None = None  # None: the reader has not chosen yet
        self._discarding = False
        self._room = asyncio.Event()
        self._room.set()

    @property
    def complete(self) -> bool:
        return self._complete.is_set()

    @property
    def discarding(self) -> bool:
        return self._discarding

    async def wait_for_room(self) -> None:
        """Return once the reader wants more bytes (the ASGI receiver waits here)."""
        await self._room.wait()

    def discard(self) -> None:
        """Nobody will read on: drop what is buffered and what still arrives."""
        self._discarding = True
        self._data.clear()
        self._room.set()

    def append(self, data: bytes) -> None:
        if self._discarding:
            return
        if self._whole or self._limit is None:
            super().append(data)
            return
        if data == b"" or self._must_raise is not None:
            return
        self._data.extend(data)
        self._has_data.set()
        if len(self._data) >= self._limit:
            self._room.clear()

    def __await__(self) -> Generator[Any, None, Any]:
        if self._whole is None:
            self._whole = True
            limit = self._limit
            if limit is not None and (
                len(self._data) > limit
                or (self._expected_length is not None and self._expected_length > limit)
            ):
                self._must_raise = RequestEntityTooLarge()
                self.set_complete()
            self._room.set()  # from here on Quart's own rule: a 413 past the limit
        return super().__await__()

    def __aiter__(self) -> StreamableBody:
        if self._whole is None:
            self._whole = False
        return self

    async def __anext__(self) -> bytes:
        data = await super().__anext__()
        self._room.set()
        return data


class StreamableRequest(Request):
    body_class = StreamableBody


class BackpressureConnection(ASGIHTTPConnection):
    """Quart's HTTP connection, receiving a body's next message only when there is room."""

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        # Quart's own, except for a body its view left unread (see the module docstring).
        request = self._create_request_from_scope(send)
        receiver = asyncio.ensure_future(self.handle_messages(request, receive))
        handler = asyncio.ensure_future(self.handle_request(request, send))
        done, pending = await asyncio.wait([handler, receiver],
                                           return_when=asyncio.FIRST_COMPLETED)
        body = request.body
        if receiver in pending and isinstance(body, StreamableBody) and not body.complete:
            body.discard()
            pending.discard(receiver)
            _drain_in_background(receiver)
        await cancel_tasks(pending)
        raise_task_exceptions(done)

    async def handle_messages(self, request: Request, receive: ASGIReceiveCallable) -> None:
        body = request.body
        while True:
            if isinstance(body, StreamableBody):
                await body.wait_for_room()
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body.set_complete()
                    if isinstance(body, StreamableBody) and body.discarding:
                        return  # all received: the server's queue has room for its close
            elif message["type"] == "http.disconnect":
                return


def _drain_in_background(receiver: asyncio.Task[None]) -> None:
    _draining.add(receiver)
    timer = asyncio.get_running_loop().call_later(DRAIN_SECONDS, receiver.cancel)

    def finished(task: asyncio.Task[None]) -> None:
        timer.cancel()
        _draining.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a server that refuses receive() after the answer

    receiver.add_done_callback(finished)


def init_app(app: Quart) -> None:
    app.request_class = StreamableRequest
    app.asgi_http_class = BackpressureConnection
