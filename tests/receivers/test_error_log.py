"""A 500 is logged once: by the error_log receiver, or by Quart when that receiver is off."""

from __future__ import annotations

from pathlib import Path

import pytest
from quart import Quart

from quart_app import create_app


def failing_app(tmp_path: Path, **config: object) -> Quart:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **config})

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("secret internals")

    @app.get("/fine")
    async def fine() -> str:
        app.add_background_task(background_boom)
        return "ok"

    async def background_boom() -> None:
        raise LookupError("in the background")

    return app


def records_of(caplog: pytest.LogCaptureFixture, kind: type[BaseException]) -> list[str]:
    """The logger of every record that carries an exception of `kind`."""
    return [record.name for record in caplog.records
            if record.exc_info and isinstance(record.exc_info[1], kind)]


async def test_a_500_is_logged_once_with_its_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = failing_app(tmp_path)
    async with app.test_app():
        client = app.test_client()
        for request_id in ("req-1", "req-2"):
            response = await client.get("/boom", headers={"X-Request-ID": request_id})
            assert response.status_code == 500
    assert records_of(caplog, RuntimeError) == ["quart_app.errors", "quart_app.errors"]
    logged = [r.getMessage() for r in caplog.records if r.name == "quart_app.errors"]
    assert logged == ["unhandled RuntimeError on GET /boom [request req-1]",
                      "unhandled RuntimeError on GET /boom [request req-2]"]


async def test_with_error_log_off_quart_logs_the_500_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = failing_app(tmp_path, RECEIVERS={"error_log": False})
    async with app.test_app():
        assert (await app.test_client().get("/boom")).status_code == 500
    assert records_of(caplog, RuntimeError) == [app.logger.name]


async def test_background_exceptions_are_still_logged_by_quart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = failing_app(tmp_path)
    async with app.test_app():
        assert (await app.test_client().get("/fine")).status_code == 200
    assert records_of(caplog, LookupError) == [app.logger.name]
