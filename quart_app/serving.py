"""How quart_app is served: run.py's repair of hypercorn 0.18, and what the app says without it.

A connection is never closed under a request it has read.

hypercorn closes an idle keep-alive connection from a task of its own, when a stop begins
(SIGTERM) or when `keep_alive_timeout` expires, while the connection's reader task may have
just read a request. That request then runs (an insert commits and is logged 201) but the
socket is closed before its answer: the client sees a closed connection, and one that retries
without an id stores the row twice. Measured with tests/test_run_shutdown.py's clients: 1 to
61 inserts committed with their answer dropped per SIGTERM, out of a few hundred.

Here the close and the reading of a request exclude each other. Both run on the event loop
without an `await` between the check and the act, so no third outcome exists: either the
request was read first (the close is skipped; the request is answered, and its end closes
the connection when stopping, or starts the idle timer again), or the close was decided
first (bytes read afterwards are dropped unparsed: the request never runs, and the client
sees a closed connection it may safely retry on).

`install()` swaps the connection class in hypercorn's asyncio worker; run.py calls it in
every process that serves. It is checked against the hypercorn version it was written for.

Served any other way (`hypercorn "quart_app:create_app()"`), the app cannot know what run.py
would have set, and `init_app` says so once, when the server starts it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from ssl import SSLError
from typing import Any

import h11
from hypercorn.asyncio import run as hypercorn_asyncio_run
from hypercorn.asyncio.tcp_server import MAX_RECV, TCPServer
from hypercorn.config import Config, Sockets
from hypercorn.events import Closed, RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import AppWrapper
from quart import Quart

from . import stop_watch

#: The hypercorn whose TCPServer internals (`_read_data`, `_initiate_server_close`) this
#: module overrides; requirements.txt pins it.
HYPERCORN_VERSION = "0.18.0"


class AnsweringTCPServer(TCPServer):
    """hypercorn's connection, closing on idleness only while no request has been read."""

    _closing = False

    def __init__(self, app: AppWrapper, *args: Any, **kwargs: Any) -> None:
        super().__init__(CloseWhenStopping(app, self), *args, **kwargs)

    async def _initiate_server_close(self) -> None:
        if self._request_read():
            return  # answered first; then closed (stopping) or kept (keep-alive)
        self._closing = True
        await super()._initiate_server_close()

    def _request_read(self) -> bool:
        protocol = self.protocol.protocol
        if not isinstance(protocol, H11Protocol):
            return False  # HTTP/2 (TLS or h2c upgrade) keeps hypercorn's own handling
        return protocol.stream is not None or protocol.connection.their_state is not h11.IDLE

    async def _read_data(self) -> None:
        # hypercorn's loop, plus the `_closing` check between reading bytes and parsing them.
        while not self.reader.at_eof():
            try:
                data = await asyncio.wait_for(self.reader.read(MAX_RECV), self.config.read_timeout)
            except (TimeoutError, ConnectionError, OSError, SSLError):
                break
            if self._closing:
                break
            await self.protocol.handle(RawData(data))
        await self.protocol.handle(Closed())


class CloseWhenStopping:
    """Answers sent once a stop has begun say `Connection: close`; a request the stop cuts
    off (still running at the end of `graceful_timeout`) is answered 503, not 500.

    hypercorn closes the connection after such an answer anyway; saying so keeps the client
    from sending its next request on it, where it would meet a closed socket. hypercorn
    cancels a request still running when `graceful_timeout` ends and answers 500 for it; it
    did not fail, the server went away under it, which is what 503 with Retry-After says.
    A cut-off request may have taken effect (an insert that committed just before): it was
    not acknowledged, and its client can tell by retrying with the same id (409).
    """

    def __init__(self, app: AppWrapper, server: TCPServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Any, receive: Any, send: Any, sync_spawn: Any,
                       call_soon: Any) -> None:
        if scope["type"] != "http":  # websockets and lifespan pass through
            await self.app(scope, receive, send, sync_spawn, call_soon)
            return
        closing = scope.get("http_version") in ("1.0", "1.1")  # HTTP/2 has no Connection
        started = False

        async def send_closing(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if closing and self.server.context.terminated.is_set():
                    headers = [*message.get("headers", ()), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_closing, sync_spawn, call_soon)
        except asyncio.CancelledError:
            if not started and self.server.context.terminated.is_set():
                await send_closing(CUT_OFF_START)
                await send_closing(CUT_OFF_BODY)
            raise


CUT_OFF_BODY = {"type": "http.response.body", "body": json.dumps({
    "error": "server_stopping",
    "message": "the server stopped before this request finished (graceful_timeout); it was "
               "not acknowledged and may or may not have taken effect: retry it (an insert "
               "with the same id answers 409 if it was stored)",
}).encode()}
CUT_OFF_START = {"type": "http.response.start", "status": 503, "headers": [
    (b"content-type", b"application/json"), (b"retry-after", b"1"),
    (b"content-length", str(len(CUT_OFF_BODY["body"])).encode()),
]}


def install() -> None:
    """Serve every connection of hypercorn's asyncio workers with `AnsweringTCPServer`, and
    bound each worker's stop (`stop_watch`)."""
    installed = version("hypercorn")
    if installed != HYPERCORN_VERSION:
        raise RuntimeError(f"quart_app.serving overrides hypercorn {HYPERCORN_VERSION}'s "
                           f"connection class; {installed} is installed: check it again")
    hypercorn_asyncio_run.TCPServer = AnsweringTCPServer  # type: ignore[attr-defined]
    hypercorn_asyncio_run.worker_serve = worker_serve_watching_the_stop


_hypercorn_worker_serve = hypercorn_asyncio_run.worker_serve

#: SHUTDOWN_TIMEOUT of the app this process serves (`init_app` sets it; 0: no limit).
_shutdown_timeout = 0.0


async def worker_serve_watching_the_stop(
    app: AppWrapper, config: Config, *, sockets: Sockets | None = None,
    shutdown_trigger: Callable[..., Awaitable[Any]] | None = None,
) -> None:
    """hypercorn's worker, whose stop gets `graceful_timeout` + SHUTDOWN_TIMEOUT seconds from
    the moment it is asked for."""
    asked = shutdown_trigger or _signalled()

    async def stop_asked() -> None:
        await asked()
        if _shutdown_timeout:
            stop_watch.watch(config.graceful_timeout + _shutdown_timeout,
                             "graceful_timeout + SHUTDOWN_TIMEOUT")

    await _hypercorn_worker_serve(app, config, sockets=sockets, shutdown_trigger=stop_asked)


def _signalled() -> Callable[[], Awaitable[Any]]:
    """One process serving alone: SIGINT and SIGTERM stop it (as hypercorn's own handlers,
    which it installs only when given no trigger)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM"):
        loop.add_signal_handler(getattr(signal, name), stop.set)
    return stop.wait


_served_on_granian = False


def mark_served_on_granian() -> None:
    """For a granian worker run.py started: nothing to warn about, and its own body handling."""
    global _served_on_granian
    _served_on_granian = True


def served_on_granian() -> bool:
    return _served_on_granian


def installed() -> bool:
    """Whether run.py serves this process: hypercorn with our connection class, or granian."""
    return _served_on_granian or (
        hypercorn_asyncio_run.TCPServer is AnsweringTCPServer)  # type: ignore[attr-defined]


def init_app(app: Quart) -> None:
    """When an ASGI server starts the app: warn once if that server is not run.py's; if it
    is, bound the stop by SHUTDOWN_TIMEOUT (`stop_watch`).

    The ASGI lifespan is the start-up only a server runs (tests start the app directly).
    """
    global _shutdown_timeout
    _shutdown_timeout = app.config["SHUTDOWN_TIMEOUT"]
    asgi_app = app.asgi_app

    async def serve_lifespan(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            if not installed():
                logging.getLogger("quart_app").warning(not_served_by_run_py())
            else:
                # On hypercorn the countdown began when the stop was asked for.
                from_shutdown = app.config["SHUTDOWN_TIMEOUT"] if _served_on_granian else 0
                await stop_watch.serve_lifespan(asgi_app, scope, receive, send,
                                                from_shutdown or None)
                return
        await asgi_app(scope, receive, send)

    app.asgi_app = serve_lifespan  # type: ignore[method-assign]


def not_served_by_run_py() -> str:
    workers = ("the number of workers is unknown (QUART_WORKERS is not set), so nothing warns "
               "that SimpleCache without SIGNALS_BUS_URL keeps invalidations inside one "
               "worker; " if "QUART_WORKERS" not in os.environ else "")
    return (
        "served without run.py: " + workers + "settings.toml's [hypercorn] table is not read, "
        "so hypercorn's own defaults apply unless given on its command line (backlog 100, "
        "which overflows when 1,000 clients connect at once; keep_alive_timeout 5 s, which "
        "races clients that drop idle connections after 5 s, as httpx does; "
        "graceful_timeout 3 s); and a stop can run a request that arrives on an idle "
        "keep-alive connection and drop its answer. Serve with `python run.py`"
    )
