"""Request bodies: awaited whole, bounded by MAX_CONTENT_LENGTH as in Quart; iterated,
unbounded in total while the bytes waiting unread stay bounded (the receiver pauses)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from quart import Quart, request
from werkzeug.exceptions import RequestEntityTooLarge

from quart_app import request_body
from quart_app.request_body import StreamableBody, init_app


async def test_awaited_whole_it_is_bounded_as_in_quart() -> None:
    body = StreamableBody(None, 10)
    body.append(b"x" * 11)
    body.set_complete()
    with pytest.raises(RequestEntityTooLarge):
        await body
    declared = StreamableBody(11, 10)  # refused by its Content-Length alone
    with pytest.raises(RequestEntityTooLarge):
        await declared
    small = StreamableBody(4, 10)
    small.append(b"abcd")
    small.set_complete()
    assert await small == b"abcd"


async def test_iterated_it_is_unbounded_and_receiving_waits_for_room() -> None:
    body = StreamableBody(1_000_000, 10)  # declared far over the limit: not refused
    received = []

    async def receive() -> None:
        for _ in range(100):
            await body.wait_for_room()
            body.append(b"0123456789")
        body.set_complete()

    receiver = asyncio.create_task(receive())
    await asyncio.sleep(0.05)
    assert not receiver.done()  # it filled the room and waits for the reader
    async for data in body:
        assert len(data) <= 10  # never more than the limit waiting unread
        received.append(data)
    await receiver
    assert b"".join(received) == b"0123456789" * 100


async def test_before_the_reader_chooses_receiving_waits_at_the_limit() -> None:
    body = StreamableBody(None, 10)
    body.append(b"x" * 10)
    waiter = asyncio.create_task(body.wait_for_room())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    body.set_complete()
    assert await body == b"x" * 10  # awaited whole: room again, under Quart's rule
    await asyncio.wait_for(waiter, 1)


async def test_an_app_streams_a_body_larger_than_max_content_length() -> None:
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 100
    init_app(app)

    @app.post("/whole")
    async def whole() -> Any:
        return {"length": len(await request.get_data())}

    @app.post("/stream")
    async def stream() -> Any:
        return {"length": sum([len(data) async for data in request.body])}

    client = app.test_client()
    big = b"x" * 10_000
    assert (await client.post("/whole", data=big)).status_code == 413
    assert await (await client.post("/whole", data=b"x" * 100)).get_json() == {"length": 100}
    assert await (await client.post("/stream", data=big)).get_json() == {"length": 10_000}


async def answer_early(messages: list[dict[str, Any]], length: int | None = None) -> tuple[
        list[dict[str, Any]], asyncio.Queue[dict[str, Any]]]:
    """Serve `messages` (the server's queue) to an app whose view answers without reading."""
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 100
    init_app(app)

    @app.post("/early")
    async def early() -> Any:
        return {"answered": True}

    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/early", "raw_path": b"/early",
             "query_string": b"", "root_path": "",
             "headers": [(b"host", b"localhost")] + (
                 [(b"content-length", str(length).encode())] if length is not None else []),
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "extensions": {}}
    await app(scope, queue.get, send)  # type: ignore[arg-type]
    return sent, queue


PART = {"type": "http.request", "body": b"x" * 100, "more_body": True}


async def test_a_body_its_view_left_unread_is_received_before_the_answer() -> None:
    # Else the server's queue stays full, which blocks its close of the stream, and a client
    # still sending may never read the answer (see the module).
    sent, queue = await answer_early(
        [PART] * 20 + [{"type": "http.request", "body": b"", "more_body": False}])
    assert queue.empty()
    assert sent[0]["status"] == 200
    assert (b"connection", b"close") not in sent[0]["headers"]  # the connection stays usable


async def test_a_rest_that_does_not_come_in_time_is_answered_with_connection_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(request_body, "DRAIN_SECONDS", 0.1)
    sent, queue = await answer_early([PART] * 20)  # and then nothing more
    assert sent[0]["status"] == 200
    assert (b"connection", b"close") in sent[0]["headers"]
    assert queue.empty()


async def test_a_rest_declared_too_large_to_wait_for_is_answered_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(request_body, "DRAIN_SECONDS", 3600)  # waiting would hang the test
    declared = request_body.DRAIN_BYTES + 10_000
    async with asyncio.timeout(30):
        sent, _ = await answer_early([PART] * 20, length=declared)
    assert sent[0]["status"] == 200
    assert (b"connection", b"close") in sent[0]["headers"]
