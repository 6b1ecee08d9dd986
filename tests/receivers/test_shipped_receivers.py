"""The receivers quart_app ships, each through the real request path, on both cache backends."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient

from quart_app import create_app
from quart_app.dispatch import connected_names
from quart_app.extensions import cache
from quart_app.receivers.signal_log import all_signals
from quart_app.signals import info_inserted

from ..support import messages


async def test_visits_are_counted_per_route_once_per_request(client: QuartClient) -> None:
    for path in ("/", "/", "/alice", "/bob", "/get"):
        await client.get(path)
    body = await (await client.get("/api/stats/visits")).get_json()
    assert body["enabled"] is True
    assert body["visits"] == {"/": 2, "/<name>": 2, "/get": 1}
    body = await (await client.get("/api/stats/visits")).get_json()
    assert body["visits"]["/api/stats/visits"] == 1


async def test_visits_of_two_apps_stay_apart(app_config: dict[str, Any]) -> None:
    first = create_app(app_config)
    second = create_app({**app_config, "CACHE_KEY_PREFIX": app_config["CACHE_KEY_PREFIX"] + "2:"})
    async with first.test_app(), second.test_app():
        await first.test_client().get("/")
        body = await (await second.test_client().get("/api/stats/visits")).get_json()
        assert "/" not in body["visits"]


async def test_visits_are_flushed_to_the_cache_periodically(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "VISITS_FLUSH_INTERVAL": 0.05})
    async with app.test_app():
        await app.test_client().get("/")
        await asyncio.sleep(0.2)
        assert await cache.client_for(app).get("stats:visits:/") == 1


async def test_visits_can_be_switched_off(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "RECEIVERS": {"visits": False}})
    async with app.test_app():
        await app.test_client().get("/")
        body = await (await app.test_client().get("/api/stats/visits")).get_json()
        assert body == {"enabled": False, "visits": {}}


async def test_login_flashes_a_message_and_the_flash_is_logged(
    client: QuartClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quart_app.flash")
    response = await client.post("/login", form={"username": "alice"})
    assert response.status_code == 302
    page = await (await client.get("/login")).get_data(as_text=True)
    assert "Welcome, alice!" in page
    assert messages(caplog, "quart_app.flash") == ["flashed [success] Welcome, alice!"]
    # Shown once: flashed messages are consumed by the page that shows them.
    assert "Welcome" not in await (await client.get("/login")).get_data(as_text=True)
    assert (await client.post("/login", form={"username": ""})).status_code == 400


async def test_signal_log_connects_every_signal_and_logs_the_life_cycle(
    app_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="quart_app.signals")
    app = create_app({**app_config, "SIGNAL_LOG": True})

    @app.websocket("/ws")
    async def echo() -> None:
        from quart import websocket

        await websocket.send(await websocket.receive())

    @app.get("/background")
    async def background() -> str:
        async def fail() -> None:
            raise RuntimeError("background failure")

        app.add_background_task(fail)
        return "queued"

    names = {signal.name for signal in all_signals()}
    assert len(names) == 28  # Quart's 18 and quart_app's 10
    for signal in all_signals():
        assert any(name.startswith("quart_app.receivers.signal_log")
                   for name in connected_names(signal, app)), signal.name
    async with app.test_app():
        client = app.test_client()
        await client.get("/alice")
        async with client.websocket("/ws") as ws:
            await ws.send("hi")
            assert await ws.receive() == "hi"
        await client.get("/background")
        await asyncio.sleep(0.1)
        await client.post("/login", form={"username": "bob"})
    logged = " ".join(messages(caplog, "quart_app.signals"))
    for name in ("request-started", "before-render-template", "template-rendered",
                 "request-finished", "request-tearing-down", "appcontext-pushed",
                 "appcontext-popped", "appcontext-tearing-down", "websocket-started",
                 "websocket-received", "websocket-sent", "got-background-exception",
                 "message-flashed"):
        assert f"signal {name}:" in logged, name


async def test_a_raising_receiver_on_a_built_in_signal_never_fails_the_request(
    app: Quart, client: QuartClient, caplog: pytest.LogCaptureFixture
) -> None:
    from quart.signals import before_render_template, request_finished

    from quart_app.dispatch import receiver

    for signal in (before_render_template, request_finished):
        @receiver(signal, app, dispatch_uid=f"broken-{signal.name}")
        async def broken(sender: Quart, **extra: Any) -> None:
            raise RuntimeError("receiver bug")

    response = await client.get("/alice")
    assert response.status_code == 200
    assert "Hello, alice" in await response.get_data(as_text=True)
    failures = messages(caplog, "quart_app.dispatch")
    assert len(failures) == 2


async def test_notification_is_sent_after_the_response(
    app_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quart_app.notify")
    app = create_app({**app_config, "RECEIVERS": {"notify": True}, "NOTIFY_DELAY": 0.2})
    async with app.test_app():
        client = app.test_client()
        response = await client.post("/api/info", json={"id": 1, "name": "sms", "money": 1})
        assert response.status_code == 201
        # The response is already here and the 200 ms notification has not been sent yet.
        assert (await (await client.get("/api/stats")).get_json())["notifications_sent"] == 0
        for _ in range(50):
            await asyncio.sleep(0.05)
            stats = await (await client.get("/api/stats")).get_json()
            if stats["notifications_sent"]:
                break
        assert stats == {"info_inserts": 1, "info_updates": 0, "info_deletes": 0,
                         "notifications_sent": 1}
    assert messages(caplog, "quart_app.notify") == [
        "notification sent (simulated SMS): info id=1 name='sms'"
    ]


async def test_notifications_in_flight_are_delivered_at_shutdown(
    app_config: dict[str, Any]
) -> None:
    app = create_app({**app_config, "RECEIVERS": {"notify": True}, "NOTIFY_DELAY": 0.3})
    async with app.test_app():
        client = app.test_client()
        for info_id in range(1, 21):
            await client.post("/api/info", json={"id": info_id, "name": "n", "money": 1})
        cache_client = cache.client_for(app)
        assert (await cache_client.get("stats:notifications_sent", 0)) < 20
    # The cache is closed now; reopen the same backend to read the count it kept.
    if app_config["CACHE_TYPE"] == "RedisCache":
        reopened = create_app(app_config)
        async with reopened.test_app():
            count = await cache.client_for(reopened).get("stats:notifications_sent")
        assert count == 20


def test_receiver_switches_are_validated() -> None:
    from quart_app.errors import ConfigError

    with pytest.raises(ConfigError, match=r"RECEIVERS\.sms"):
        create_app({"RECEIVERS": {"sms": True}})
    app = create_app({"RECEIVERS": {"NOTIFY": "true", "audit": False}})
    assert app.config["RECEIVERS"]["notify"] is True
    assert app.config["RECEIVERS"]["audit"] is False
    assert connected_names(info_inserted, app) == [
        "quart_app.info.invalidation.connect.<locals>.invalidate",
        "quart_app.receivers.counters.connect.<locals>.count_insert",
        "quart_app.receivers.notify.connect.<locals>.send_notification",
        "quart_app.instrumentation.count_inserts.<locals>.count_insert",  # METRICS
    ]


async def test_app_fixture_serves(app: Quart) -> None:
    assert app.extensions["visits"] is not None
