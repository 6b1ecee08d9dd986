"""Every error as JSON: a 500 hides its cause and names its request; a cache outage is a 503."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quart_app import create_app

from .support import free_port


async def test_an_unhandled_error_is_a_500_naming_the_request_and_hiding_the_cause(
    app_config: dict[str, Any],
) -> None:
    # Its one log line is the error_log receiver's (tests/receivers/test_error_log.py).
    app = create_app(app_config)

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("secret internals")

    async with app.test_app():
        response = await app.test_client().get("/boom", headers={"X-Request-ID": "req-42"})
        assert response.status_code == 500
        body = await response.get_json()
        assert body["error"] == "internal_server_error"
        assert body["request_id"] == "req-42"
        assert "secret internals" not in await response.get_data(as_text=True)
        assert response.headers["X-Request-ID"] == "req-42"


async def test_cache_outage_with_errors_not_ignored_is_a_503_and_a_clean_stop(
    tmp_path: Path,
) -> None:
    app = create_app({"CACHE_TYPE": "RedisCache", "CACHE_IGNORE_ERRORS": False,
                      "CACHE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    async with app.test_app():  # leaving it runs the visit flush against the dead cache
        client = app.test_client()
        response = await client.get("/get")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert (await response.get_json())["error"] == "cache_unavailable"
        assert (await client.get("/alice")).status_code == 200
