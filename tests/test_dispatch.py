"""Connecting receivers and dispatching signals: order, isolation, duplicates, background."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from blinker import Namespace
from quart import Quart

from quart_app import create_app
from quart_app.dispatch import DuplicateReceiver, connected_names, receiver, send

signals = Namespace()
ping = signals.signal("test-ping")


@pytest.fixture
async def app(tmp_path: Path) -> Any:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'd.sqlite3'}",
                      "SIGNALS_MAX_BACKGROUND": 2, "SIGNALS_BACKGROUND_TIMEOUT": 0.5})
    async with app.test_app():
        yield app


async def test_receivers_run_in_connection_order(app: Quart) -> None:
    calls: list[int] = []
    for index in range(12):
        async def record(sender: Quart, index: int = index, **extra: Any) -> None:
            calls.append(index)
        receiver(ping, app, dispatch_uid=f"r{index}")(record)
    await send(ping, app)
    assert calls == list(range(12))


async def test_a_raising_receiver_is_logged_and_the_rest_still_run(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    @receiver(ping, app)
    async def first(sender: Quart, **extra: Any) -> None:
        calls.append("first")

    @receiver(ping, app)
    async def broken(sender: Quart, **extra: Any) -> None:
        raise ValueError("boom")

    @receiver(ping, app)
    async def last(sender: Quart, **extra: Any) -> None:
        calls.append("last")

    await send(ping, app)  # does not raise
    assert calls == ["first", "last"]
    failures = [r for r in caplog.records if r.name == "quart_app.dispatch"]
    assert len(failures) == 1
    assert "broken" in failures[0].getMessage() and "test-ping" in failures[0].getMessage()


async def test_duplicate_registration_is_refused(app: Quart) -> None:
    async def handler(sender: Quart, **extra: Any) -> None: ...

    receiver(ping, app, dispatch_uid="only-once")(handler)
    with pytest.raises(DuplicateReceiver, match="only-once"):
        receiver(ping, app, dispatch_uid="only-once")(handler)
    receiver(ping, app)(handler)  # a different uid is a different registration
    with pytest.raises(DuplicateReceiver):
        receiver(ping, app)(handler)


async def test_receivers_hear_only_their_own_app(app: Quart, tmp_path: Path) -> None:
    other = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'o.sqlite3'}"})
    heard: list[str] = []

    @receiver(ping, app)
    async def mine(sender: Quart, **extra: Any) -> None:
        heard.append("mine")

    @receiver(ping, other)
    async def theirs(sender: Quart, **extra: Any) -> None:
        heard.append("theirs")

    await send(ping, app)
    assert heard == ["mine"]


async def test_receivers_defined_in_a_function_are_held_strongly(app: Quart) -> None:
    heard: list[int] = []

    def register() -> None:
        @receiver(ping, app)
        async def local(sender: Quart, **extra: Any) -> None:
            heard.append(1)

    register()
    import gc

    gc.collect()
    await send(ping, app)
    assert heard == [1]


async def test_sync_receivers_run_in_the_thread_pool(app: Quart) -> None:
    threads: list[str] = []

    @receiver(ping, app)
    def sync_receiver(sender: Quart, **extra: Any) -> None:
        threads.append(threading.current_thread().name)

    await send(ping, app)
    assert len(threads) == 1
    assert threads[0] != threading.main_thread().name


async def test_shutdown_disconnects_every_receiver(tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite3'}"})
    async with app.test_app():
        @receiver(ping, app)
        async def handler(sender: Quart, **extra: Any) -> None: ...

        assert connected_names(ping, app)
    assert connected_names(ping, app) == []
    assert list(ping.receivers_for(app)) == []


async def test_background_receivers_do_not_delay_send(app: Quart) -> None:
    done = asyncio.Event()

    @receiver(ping, app, background=True)
    async def slow(sender: Quart, **extra: Any) -> None:
        await asyncio.sleep(0.2)
        done.set()

    await send(ping, app)
    assert not done.is_set()  # send returned before the receiver finished
    await asyncio.wait_for(done.wait(), 5)


async def test_background_receivers_are_bounded(app: Quart) -> None:
    running = 0
    peak = 0
    finished = 0
    all_done = asyncio.Event()

    @receiver(ping, app, background=True)
    async def tracked(sender: Quart, **extra: Any) -> None:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        finished += 1
        if finished == 10:
            all_done.set()

    for _ in range(10):
        await send(ping, app)
    await asyncio.wait_for(all_done.wait(), 10)
    assert peak == 2  # SIGNALS_MAX_BACKGROUND


async def test_background_receivers_time_out(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    @receiver(ping, app, background=True)
    async def stuck(sender: Quart, **extra: Any) -> None:
        await asyncio.sleep(60)

    await send(ping, app)
    await asyncio.sleep(0.7)  # SIGNALS_BACKGROUND_TIMEOUT is 0.5
    assert not app.background_tasks
    assert any("timed out" in r.getMessage() for r in caplog.records)


async def test_shutdown_drains_background_receivers(tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'b.sqlite3'}"})
    delivered: list[int] = []
    async with app.test_app():
        @receiver(ping, app, background=True)
        async def deliver(sender: Quart, n: int, **extra: Any) -> None:
            await asyncio.sleep(0.2)
            delivered.append(n)

        for n in range(50):
            await send(ping, app, n=n)
        assert delivered == []
    assert sorted(delivered) == list(range(50))


async def test_shutdown_logs_what_it_had_to_cancel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="quart_app.dispatch")
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'c.sqlite3'}",
                      "BACKGROUND_TASK_SHUTDOWN_TIMEOUT": 0.2})
    async with app.test_app():
        @receiver(ping, app, background=True)
        async def endless(sender: Quart, **extra: Any) -> None:
            await asyncio.sleep(60)

        await send(ping, app)
        await send(ping, app)
    cancelled = [r.getMessage() for r in caplog.records if "cancelled at shutdown" in
                 r.getMessage()]
    assert len(cancelled) == 2
    assert "endless" in cancelled[0]
