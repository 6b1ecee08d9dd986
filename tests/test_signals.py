"""Receivers connected with plain blinker, the tutorial's way, on both signal families.

The tutorial writes `signal.connect(func)` at import time, for any sender, sync functions
included. Here such receivers raise (sync and async), and the tests show that the other
receivers still run, that the error is logged with the receiver's name, that the request or
the caller never sees it, and that quart_app's own receivers (the cache invalidation first of
all) always run, and run first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from blinker import ANY, NamedSignal
from quart import Quart, websocket
from quart.signals import (
    before_render_template,
    got_request_exception,
    message_flashed,
    request_finished,
    template_rendered,
    websocket_received,
    websocket_sent,
)

from quart_app import create_app
from quart_app.db import InfoRow
from quart_app.dispatch import GuardedSignal, receiver, send
from quart_app.signals import info_inserted

from .support import messages

# What the plain receivers below heard, in order; emptied before each test.
heard: list[str] = []


def broken_sync(sender: Any, **extra: Any) -> None:
    raise RuntimeError("sync receiver bug")


async def broken_async(sender: Any, **extra: Any) -> None:
    raise RuntimeError("async receiver bug")


def record_sync(sender: Any, **extra: Any) -> None:
    heard.append("sync")


async def record_async(sender: Any, **extra: Any) -> None:
    heard.append("async")


TUTORIAL_RECEIVERS = (broken_sync, broken_async, record_sync, record_async)
BROKEN_NAMES = {f"receiver tests.test_signals.{name} failed on" for name in
                ("broken_sync", "broken_async")}


@pytest.fixture(autouse=True)
def fresh_record() -> None:
    heard.clear()


@contextmanager
def connected(signal: NamedSignal, *functions: Callable[..., Any],
              sender: Any = ANY) -> Iterator[None]:
    """`signal.connect(fn)` as the tutorial writes it (weak, any sender), undone afterwards."""
    for function in functions:
        signal.connect(function, sender=sender)
    try:
        yield
    finally:
        for function in functions:
            signal.disconnect(function)


def failures(caplog: pytest.LogCaptureFixture, signal: NamedSignal) -> list[str]:
    """The receiver failures logged for `signal`, as `receiver <qualified name> failed on`."""
    suffix = f" {signal.name}"
    return sorted(message.removesuffix(suffix) for message in
                  messages(caplog, "quart_app.dispatch") if message.endswith(suffix))


@pytest.fixture
def sqlite_config(tmp_path: Path) -> dict[str, Any]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'signals.sqlite3'}"}


# quart_app's own signals


async def test_read_your_writes_holds_with_raising_plain_receivers_on_info_inserted(
    app_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with connected(info_inserted, *TUTORIAL_RECEIVERS):  # before create_app, any sender
        app = create_app(app_config)
        async with app.test_app():
            client = app.test_client()
            assert (await (await client.get("/api/info")).get_json())["items"] == []
            for info_id in range(1, 6):
                response = await client.post("/api/info",
                                             json={"id": info_id, "name": "n", "money": 1})
                assert response.status_code == 201
                page = await (await client.get("/api/info")).get_json()
                assert [item["id"] for item in page["items"]] == list(range(info_id, 0, -1))
                assert (await client.get(f"/api/info/{info_id}")).status_code == 200
    assert sorted(heard) == ["async"] * 5 + ["sync"] * 5
    assert failures(caplog, info_inserted) == sorted([*BROKEN_NAMES] * 5)


def list_reader(name: str, seen: dict[str, list[int]]) -> Callable[..., Any]:
    async def read_list(sender: Quart, row: InfoRow, **extra: Any) -> None:
        page = await (await sender.test_client().get("/api/info")).get_json()
        seen[name] = [item["id"] for item in page["items"]]

    read_list.__qualname__ = f"read_list[{name}]"
    return read_list


async def test_a_plain_receiver_reading_the_list_during_the_signal_sees_the_row(
    app_config: dict[str, Any]
) -> None:
    seen: dict[str, list[int]] = {}
    # Several, so that blinker's own (unordered) choice cannot put them all after the
    # invalidation by luck.
    readers = [list_reader(f"r{index}", seen) for index in range(6)]
    with connected(info_inserted, *readers, broken_async, broken_sync):
        app = create_app(app_config)
        async with app.test_app():
            client = app.test_client()
            assert (await (await client.get("/api/info")).get_json())["items"] == []  # cached
            response = await client.post("/api/info", json={"id": 7, "name": "n", "money": 1})
            assert response.status_code == 201
    assert seen == {f"r{index}": [7] for index in range(6)}


@pytest.mark.parametrize("style", ["connect_to_app", "connect_via_app", "weak_local",
                                   "receiver_decorator"])
async def test_every_way_of_connecting_is_guarded_on_info_inserted(
    style: str, sqlite_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(sqlite_config)
    other = create_app(sqlite_config)

    async def local_broken(sender: Quart, **extra: Any) -> None:
        raise RuntimeError("local receiver bug")

    def local_broken_sync(sender: Quart, **extra: Any) -> None:
        raise RuntimeError("local sync receiver bug")

    broken = (local_broken, local_broken_sync)
    if style == "connect_to_app":
        for function in (*broken, record_async):
            info_inserted.connect(function, sender=app)
        info_inserted.connect(record_sync, sender=other)  # another app's: never heard here
    elif style == "connect_via_app":
        for function in (*broken, record_async):
            info_inserted.connect_via(app)(function)
        info_inserted.connect_via(other)(record_sync)
    elif style == "weak_local":
        for function in (*broken, record_async):
            info_inserted.connect(function)  # weak: alive while this test holds it
    else:
        for function in (*broken, record_async):
            receiver(info_inserted, app)(function)
    try:
        async with app.test_app():
            response = await app.test_client().post("/api/info",
                                                     json={"id": 3, "name": "n", "money": 1})
            assert response.status_code == 201
            page = await (await app.test_client().get("/api/info")).get_json()
            assert [item["id"] for item in page["items"]] == [3]
    finally:
        for function in (*broken, record_async, record_sync):
            info_inserted.disconnect(function)
    assert heard == ["async"]
    prefix = "receiver tests.test_signals.test_every_way_of_connecting_is_guarded_on_info_" \
             "inserted.<locals>."
    assert failures(caplog, info_inserted) == [f"{prefix}local_broken failed on",
                                               f"{prefix}local_broken_sync failed on"]


async def test_send_async_called_directly_is_guarded_and_reports_the_errors(
    sqlite_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(sqlite_config)
    with connected(info_inserted, *TUTORIAL_RECEIVERS):
        async with app.test_app():
            results = await info_inserted.send_async(app, row=InfoRow(1, "n", Decimal(1)))
    by_receiver = dict(results)
    assert isinstance(by_receiver[broken_sync], RuntimeError)  # Django's send_robust
    assert isinstance(by_receiver[broken_async], RuntimeError)
    assert sorted(heard) == ["async", "sync"]
    # quart_app's fan-out (the invalidation) came first.
    assert results[0][0].__qualname__ == "fan_out[info-inserted]"
    assert failures(caplog, info_inserted) == sorted(BROKEN_NAMES)


async def test_a_sync_send_with_async_receivers_is_refused_before_any_runs(
    sqlite_config: dict[str, Any]
) -> None:
    app = create_app(sqlite_config)
    with connected(info_inserted, record_sync), pytest.raises(
        RuntimeError, match=r"info-inserted has async receivers .*fan_out\[info-inserted\]"
    ):
        info_inserted.send(app, row=InfoRow(1, "n", Decimal(1)))
    assert heard == []


class BrokenCallable:
    def __call__(self, sender: Any, **extra: Any) -> None:
        raise RuntimeError("callable object bug")


def test_a_sync_send_with_sync_receivers_is_guarded(caplog: pytest.LogCaptureFixture) -> None:
    signal = GuardedSignal("test-sync-only")
    broken_object = BrokenCallable()  # named after its class: it has no name of its own
    for function in (broken_sync, broken_object, record_sync):
        signal.connect(function)
    results = signal.send("anyone")
    assert heard == ["sync"]
    assert isinstance(dict(results)[broken_sync], RuntimeError)
    assert failures(caplog, signal) == ["receiver tests.test_signals.BrokenCallable failed on",
                                        "receiver tests.test_signals.broken_sync failed on"]


async def test_sender_filtering_and_muting_stay_blinker_s(sqlite_config: dict[str, Any]) -> None:
    app = create_app(sqlite_config)
    other = create_app(sqlite_config)
    with connected(info_inserted, record_async, sender=other):
        assert record_async in list(info_inserted.receivers_for(other))
        assert record_async not in list(info_inserted.receivers_for(app))
        await send(info_inserted, app, row=InfoRow(1, "n", Decimal(1)))
        assert heard == []
        with info_inserted.muted():
            assert await info_inserted.send_async(other, row=InfoRow(1, "n", Decimal(1))) == []
        await send(info_inserted, other, row=InfoRow(1, "n", Decimal(1)))
        assert heard == ["async"]


# Quart's built-in signals


def visits_of(rule: str) -> Callable[[Quart], Any]:
    async def check(app: Quart) -> None:
        body = await (await app.test_client().get("/api/stats/visits")).get_json()
        assert body["visits"][rule] == 1

    return check


# signal, request (method, path, form), its status, quart_app's logger and what it logged
BUILT_IN_CASES = {
    "request_finished": (request_finished, ("GET", "/alice", None), 200, None, None),
    "before_render_template": (before_render_template, ("GET", "/alice", None), 200,
                               "quart_app.render", "rendering index.html for name='alice'"),
    "template_rendered": (template_rendered, ("GET", "/login", None), 200,
                          "quart_app.render", "rendered login.html"),
    "message_flashed": (message_flashed, ("POST", "/login", {"username": "alice"}), 302,
                        "quart_app.flash", "flashed [success] Welcome, alice!"),
    "got_request_exception": (got_request_exception, ("GET", "/boom", None), 500,
                              "quart_app.errors", "unhandled RuntimeError on GET /boom"),
}


def app_with_a_failing_route(config: dict[str, Any]) -> Quart:
    app = create_app(config)

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("a bug in a view")

    return app


@pytest.mark.parametrize("case", list(BUILT_IN_CASES))
async def test_raising_plain_receivers_on_built_in_signals_never_stop_quart_app_s_own(
    case: str, sqlite_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quart_app")
    signal, (method, path, form), status, logger, logged = BUILT_IN_CASES[case]
    with connected(signal, *TUTORIAL_RECEIVERS):  # before create_app, any sender
        app = app_with_a_failing_route(sqlite_config)
        async with app.test_app():
            client = app.test_client()
            response = await (client.post(path, form=form) if method == "POST"
                              else client.get(path))
            assert response.status_code == status
            if status == 500:  # the view's own bug: the usual JSON 500, nothing more
                assert (await response.get_json())["error"] == "internal_server_error"
            if signal is request_finished:
                body = await (await client.get("/api/stats/visits")).get_json()
                assert body["visits"]["/<name>"] == 1
    if logger is not None:
        assert [message for message in messages(caplog, logger)
                if message.startswith(logged)] != []
    assert {"sync", "async"} <= set(heard)
    assert set(failures(caplog, signal)) == BROKEN_NAMES


@pytest.mark.parametrize("style", ["connect_to_app", "connect_via_app", "weak_local"])
async def test_every_way_of_connecting_is_guarded_on_request_finished(
    style: str, sqlite_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(sqlite_config)

    def local_broken(sender: Quart, **extra: Any) -> None:
        raise RuntimeError("local receiver bug")

    if style == "connect_to_app":
        request_finished.connect(local_broken, sender=app)
    elif style == "connect_via_app":
        request_finished.connect_via(app)(local_broken)
    else:
        request_finished.connect(local_broken)
    try:
        async with app.test_app():
            client = app.test_client()
            assert (await client.get("/alice")).status_code == 200
            body = await (await client.get("/api/stats/visits")).get_json()
            assert body["visits"]["/<name>"] == 1
    finally:
        request_finished.disconnect(local_broken)
    logged = failures(caplog, request_finished)
    assert logged and set(logged) == {
        "receiver tests.test_signals.test_every_way_of_connecting_is_guarded_on_request_"
        "finished.<locals>.local_broken failed on"}


async def test_a_plain_quart_app_keeps_quart_s_semantics(
    sqlite_config: dict[str, Any]
) -> None:
    create_app(sqlite_config)  # quart_app is in use in this process
    plain = Quart("plain")

    @plain.get("/")
    async def index() -> str:
        return "plain"

    with connected(request_finished, broken_async, sender=plain):
        async with plain.test_app():
            # Quart's own behaviour: a raising receiver is the request's error.
            assert (await plain.test_client().get("/")).status_code == 500


@pytest.mark.parametrize(("signal", "signal_log"), [
    pytest.param(websocket_sent, False, id="websocket_sent"),
    pytest.param(websocket_received, True, id="websocket_received"),
])
async def test_raising_plain_receivers_on_websocket_messages_never_break_the_socket(
    signal: NamedSignal, signal_log: bool, sqlite_config: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Sent with the message as sender: guarded in a quart_app app's context (websocket_sent)
    # or when a quart_app receiver listens (websocket_received, here SIGNAL_LOG's).
    caplog.set_level(logging.DEBUG, logger="quart_app.signals")
    with connected(signal, *TUTORIAL_RECEIVERS):
        app = create_app({**sqlite_config, "SIGNAL_LOG": signal_log})

        @app.websocket("/ws")
        async def echo() -> None:
            await websocket.send(await websocket.receive())
            await websocket.send("again")

        async with app.test_app():
            async with app.test_client().websocket("/ws") as socket:
                await socket.send("hi")
                assert await socket.receive() == "hi"
                assert await socket.receive() == "again"
    assert {"sync", "async"} <= set(heard)
    assert set(failures(caplog, signal)) == BROKEN_NAMES
    if signal_log:
        assert f"signal {signal.name}: " in " ".join(messages(caplog, "quart_app.signals"))
