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

A view that answers before its body has all arrived (a 413 past a row limit) leaves the
rest in hypercorn's queue, where it blocks the stream's close; and a client still sending
may never read the answer. So before the answer's headers go out, the rest is received and
dropped (at most `DRAIN_BYTES`, for at most `DRAIN_SECONDS`), as servers do with an unread
body: the client then reads the answer, and the connection stays reusable. A body still
arriving past either bound is answered with `Connection: close`, and what still comes is
dropped in the background until the server has queued nothing more for
`DRAIN_IDLE_SECONDS`.
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

from .serving import served_on_granian

#: Most bytes of an unread body's rest received and dropped before the answer.
DRAIN_BYTES = 16 * 1024 * 1024
#: Most seconds the answer waits for an unread body's rest (and the background drain lasts).
DRAIN_SECONDS = 10.0
#: Draining stops once the server has queued nothing more for this long.
DRAIN_IDLE_SECONDS = 1.0

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
        self._received = 0
        self._dropped = 0
        self._drain_over = asyncio.Event()  # complete, over DRAIN_BYTES, or receiving stopped
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

    async def drained(self, timeout: float) -> bool:
        """Whether the rest of the body arrived (and was dropped) within the bounds."""
        if (self._expected_length is not None
                and self._expected_length - self._received > DRAIN_BYTES):
            return False  # declared too large to wait for: answer at once
        try:
            async with asyncio.timeout(timeout):
                await self._drain_over.wait()
        except TimeoutError:
            pass
        return self.complete

    def stop_draining(self) -> None:
        self._drain_over.set()

    def set_complete(self) -> None:
        super().set_complete()
        self._drain_over.set()

    def append(self, data: bytes) -> None:
        self._received += len(data)
        if self._discarding:
            self._dropped += len(data)
            if self._dropped > DRAIN_BYTES:
                self._drain_over.set()
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
        body = request.body
        stream = body if isinstance(body, StreamableBody) else None

        async def send_after_draining(message: Any) -> None:
            # The view is done with the body once it answers.
            if (stream is not None and message["type"] == "http.response.start"
                    and not stream.complete):
                stream.discard()
                if not await stream.drained(DRAIN_SECONDS):
                    message = {**message,
                               "headers": [*message["headers"], (b"connection", b"close")]}
            await send(message)

        receiver = asyncio.ensure_future(self.handle_messages(request, receive))
        handler = asyncio.ensure_future(self.handle_request(request, send_after_draining))
        done, pending = await asyncio.wait([handler, receiver],
                                           return_when=asyncio.FIRST_COMPLETED)
        if receiver in pending and stream is not None and not stream.complete:
            stream.discard()
            pending.discard(receiver)
            _drain_in_background(receiver)
        await cancel_tasks(pending)
        raise_task_exceptions(done)

    async def handle_messages(self, request: Request, receive: ASGIReceiveCallable) -> None:
        body = request.body
        stream = body if isinstance(body, StreamableBody) else None
        try:
            await self._receive(body, stream, receive)
        finally:
            if stream is not None:
                stream.stop_draining()

    @staticmethod
    async def _receive(body: Body, stream: StreamableBody | None,
                       receive: ASGIReceiveCallable) -> None:
        closed = False  # the server reported the stream closed while the body was dropped
        while True:
            draining = stream is not None and stream.discarding
            if stream is not None:
                await stream.wait_for_room()
            if closed:
                # The server keeps queueing what it had read of the body even after the
                # stream's close: take it until nothing more comes.
                try:
                    async with asyncio.timeout(DRAIN_IDLE_SECONDS):
                        message = await receive()
                except TimeoutError:
                    return
            else:
                message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body.set_complete()
                    if closed:
                        return  # all received: nothing more will be queued
            elif message["type"] == "http.disconnect":
                if stream is None or not draining:
                    return
                closed = True
                stream.stop_draining()


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
    if served_on_granian():
        # Under granian this connection class left requests unanswered when several new
        # connections arrived at once (41 of 120 past 3 s, measured; 0 with Quart's own):
        # granian keeps Quart's body handling, so an NDJSON load there is bounded by
        # MAX_CONTENT_LENGTH like any body.
        return
    app.request_class = StreamableRequest
    app.asgi_http_class = BackpressureConnection
