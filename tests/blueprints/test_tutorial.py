"""The tutorial's routes, through the real serving lifecycle, on both cache backends."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pytest
from quart import Quart, render_template_string, request
from quart.testing import QuartClient

from quart_app import create_app
from quart_app.extensions import cache


async def test_get_before_index_is_a_clear_404(client: QuartClient) -> None:
    response = await client.get("/get")
    assert response.status_code == 404
    body = await response.get_json()
    assert body["error"] == "not_found"
    assert "call GET / first" in body["message"]


async def test_index_caches_the_name_and_get_returns_it(client: QuartClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert await response.get_data(as_text=True) == "index"
    response = await client.get("/get")
    assert response.status_code == 200
    assert await response.get_data(as_text=True) == "8888"


async def test_cached_value_expires_with_the_default_timeout(app_config: dict[str, Any]) -> None:
    import asyncio

    app = create_app({**app_config, "CACHE_DEFAULT_TIMEOUT": 1})
    async with app.test_app():
        client = app.test_client()
        await client.get("/")
        assert (await client.get("/get")).status_code == 200
        await asyncio.sleep(1.2)
        assert (await client.get("/get")).status_code == 404


async def test_name_page_renders_escaped(client: QuartClient) -> None:
    response = await client.get("/%3Cscript%3Ealice")
    assert response.status_code == 200
    html = await response.get_data(as_text=True)
    assert "Hello, &lt;script&gt;alice" in html
    assert "<script>" not in html


async def test_login_page_renders(client: QuartClient) -> None:
    response = await client.get("/login")
    assert response.status_code == 200
    assert '<form method="post" action="/login">' in await response.get_data(as_text=True)


def render_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "quart_app.render"]


async def test_index_render_is_logged_once_per_render(
    app_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quart_app.render")
    other = create_app(app_config)  # a second app in the process must not double the log
    app = create_app(app_config)
    async with app.test_app(), other.test_app():
        client = app.test_client()
        await client.get("/alice")
        assert render_logs(caplog) == ["rendering index.html for name='alice'"]
        await client.get("/login")
        assert render_logs(caplog)[1:] == ["rendered login.html"]
        await other.test_client().get("/bob")
        assert render_logs(caplog)[2:] == ["rendering index.html for name='bob'"]


@pytest.mark.parametrize("setting", ["TUTORIAL_ROUTES", "SEED_ROUTES"])
async def test_tutorial_routes_can_be_switched_off(
    app_config: dict[str, Any], setting: str
) -> None:
    app = create_app({**app_config, setting: False})
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/alice")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200


async def test_unknown_method_is_a_json_405(client: QuartClient) -> None:
    response = await client.delete("/get")
    assert response.status_code == 405
    assert (await response.get_json())["error"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


async def test_app_fixture_is_serving(app: Quart) -> None:
    assert cache.client_for(app) is not None


async def test_no_template_context_processor_sends_a_render_through_a_thread() -> None:
    # Flask's sync processor, which every blueprint gets from Flask's Scaffold, would.
    app = create_app()
    processors = [f for functions in app.template_context_processors.values()
                  for f in functions]
    assert processors and all(inspect.iscoroutinefunction(f) for f in processors)


async def test_a_blueprints_template_still_sees_request_session_and_g() -> None:
    app = create_app()
    async with app.test_request_context("/alice"):
        assert request.blueprints == ["tutorial"]
        html = await render_template_string(
            "{{ request.path }} {{ session is defined }} {{ g is defined }}")
    assert html == "/alice True True"
