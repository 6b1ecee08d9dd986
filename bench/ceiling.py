"""The ceiling: a bare ASGI callable answering a constant small body, on hypercorn.

The harness serves it through quart_app's own run.py (`run.py --app bench.ceiling:app`), so
it has run.py's settings and worker model exactly; `main` below is kept for running it alone.

Served with the settings quart_app's run.py uses (hypercorn 0.18 `hypercorn.run.run` with
2 workers, keep-alive 75 s, graceful timeout 10 s, no access log, asyncio loop), so no Quart app
served by run.py can be faster than this on the same machine. If run.py's settings change, change
HYPERCORN_SETTINGS here too.

    .venv/bin/python bench/ceiling.py --bind 127.0.0.1:8100 [--workers 2]
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from hypercorn.config import Config
from hypercorn.run import run

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b"8888"
HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"4")]

# Keep in step with run.py.
HYPERCORN_SETTINGS: dict[str, Any] = {
    "keep_alive_timeout": 75,
    "graceful_timeout": 10,
    "backlog": 2048,
    "accesslog": None,
    "worker_class": "asyncio",  # run.py's default on hypercorn (uvloop is granian's)
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    # Drain the request body (POSTs) before answering.
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1:8100")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    config = Config.from_mapping(HYPERCORN_SETTINGS)
    config.bind = [args.bind]
    config.workers = args.workers
    # Spawned workers import the app by path.
    config.application_path = f"{Path(__file__).resolve().with_suffix('')}:app"
    return run(config)


if __name__ == "__main__":
    raise SystemExit(main())
