"""quart_app plus routes only the process tests need: a slow request, the worker pid and loop."""

from __future__ import annotations

import asyncio
import os

from quart import Quart, request

from quart_app import create_app


def create_slow_app() -> Quart:
    app = create_app()

    @app.get("/test/slow")
    async def slow() -> dict[str, float]:
        seconds = float(request.args.get("seconds", "1"))
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/test/pid")
    async def pid() -> dict[str, int | str]:
        loop = type(asyncio.get_running_loop())
        return {"pid": os.getpid(), "loop": f"{loop.__module__}.{loop.__qualname__}"}

    return app
