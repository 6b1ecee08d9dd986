"""quart_app plus routes only the process tests need: a slow request, the worker pid and loop."""

from __future__ import annotations

import asyncio
import logging
import os

from quart import Quart, request

from quart_app import create_app


def create_slow_app() -> Quart:
    app = create_app()

    @app.get("/test/slow")
    async def slow() -> dict[str, float]:
        seconds = float(request.args.get("seconds", "1"))
        logging.getLogger("quart_app").info("test/slow: sleeping %s s", seconds)
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/test/pid")
    async def pid() -> dict[str, int | str]:
        loop = type(asyncio.get_running_loop())
        return {"pid": os.getpid(), "loop": f"{loop.__module__}.{loop.__qualname__}"}

    return app


def create_app_that_hangs_when_stopping() -> Quart:
    """An app with an `after_serving` function that never returns, as a broken one would."""
    app = create_app()

    @app.after_serving
    async def wait_forever() -> None:
        await asyncio.Event().wait()

    return app


def create_app_with_a_view_that_ignores_cancellation() -> Quart:
    """An app with a view that goes on when cancelled, as a broken one would."""
    app = create_app()

    @app.get("/test/stubborn")
    async def stubborn() -> str:
        logging.getLogger("quart_app").info("test/stubborn: started")
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    return app
