"""quart_app plus two routes only the process tests need: a slow request and the worker pid."""

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
    async def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app
