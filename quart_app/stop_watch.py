"""A stop that cannot hang: past SHUTDOWN_TIMEOUT the process says where it waits, and exits.

A process run.py serves stops in steps: the server lets open requests finish
(`graceful_timeout`), then the app's lifespan shutdown waits for Quart's background tasks
(BACKGROUND_TASK_SHUTDOWN_TIMEOUT), ends the `while_serving` generators and runs the
`after_serving` functions (the last visit counts, the bus, the cache, the pool), then the
event loop cancels what is left and joins its threads. Each step of ours is bounded, but one
that waits inside a library, or in a function a user registered, could wait forever; an
orchestrator would then kill the process after its own grace period, and nothing would say why.

From the moment the lifespan shutdown begins, a thread gives the rest SHUTDOWN_TIMEOUT
seconds. Past that it logs one error line, where the lifespan and every other asyncio task
wait (their await chains: on granian the lifespan is not an asyncio task, so it is followed
from its coroutine) and the stack of every thread, and exits with status 1: the stop is
bounded, the log names the step that hung, and the status says the stop was not clean.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

logger = logging.getLogger("quart_app")

#: The exit status of a stop that overran: not 0, since the stop did not finish.
OVERRAN_STATUS = 1

ASGIApp = Callable[[Any, Any, Any], Coroutine[Any, Any, None]]


async def serve_lifespan(asgi_app: ASGIApp, scope: Any, receive: Callable[[], Awaitable[Any]],
                         send: Any, seconds: float) -> None:
    """Run the app's lifespan; its shutdown starts the countdown of `seconds`."""
    lifespan: Coroutine[Any, Any, None] | None = None

    async def receive_and_watch() -> Any:
        message = await receive()
        if message["type"] == "lifespan.shutdown" and lifespan is not None:
            watch(seconds, asyncio.get_running_loop(), lifespan)
        return message

    lifespan = asgi_app(scope, receive_and_watch, send)
    await lifespan


def watch(seconds: float, loop: asyncio.AbstractEventLoop, lifespan: Coroutine[Any, Any, Any],
          ) -> None:
    """Start the countdown; the process exits before it ends if the stop goes well."""
    threading.Thread(target=_count_down, args=(seconds, loop, lifespan), name="stop-watch",
                     daemon=True).start()


def _count_down(seconds: float, loop: asyncio.AbstractEventLoop,
                lifespan: Coroutine[Any, Any, Any]) -> None:
    time.sleep(seconds)
    logger.error("the stop did not finish within SHUTDOWN_TIMEOUT (%.1f s): exiting with "
                 "status %d; what it was waiting for follows", seconds, OVERRAN_STATUS)
    try:
        sys.stderr.write(report(loop, lifespan))
        sys.stderr.flush()
    finally:
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        os._exit(OVERRAN_STATUS)


def report(loop: asyncio.AbstractEventLoop, lifespan: Coroutine[Any, Any, Any]) -> str:
    """Where the lifespan waits, then each other unfinished task of `loop`, outermost first.

    Read from another thread while the loop may still run: a task can finish meanwhile,
    which at worst shows a chain one step out of date.
    """
    lines = ["the app's lifespan (its shutdown) waits at:\n"]
    lines.extend(f"    {where}\n" for where in _described(_awaited_by(lifespan)))
    for task in asyncio.all_tasks(loop):
        chain = list(_awaited_by(task.get_coro()))
        if any(awaitable is lifespan for awaitable in chain):
            continue  # the lifespan's own task: shown above
        lines.append(f"  task {task.get_name()!r} waits at:\n")
        lines.extend(f"    {where}\n" for where in _described(chain))
    return "".join(lines)


def _awaited_by(awaitable: Any) -> Iterator[Any]:
    """`awaitable`, what it awaits, what that awaits, ... (at most 100 deep)."""
    for _ in range(100):
        if awaitable is None:
            return
        yield awaitable
        awaitable = (getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)
                     or getattr(awaitable, "gi_yieldfrom", None))


def _described(chain: list[Any] | Iterator[Any]) -> Iterator[str]:
    for awaitable in chain:
        frame = (getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None)
                 or getattr(awaitable, "gi_frame", None))
        if frame is None:
            continue  # a future's iterator: the line above awaits it
        code = frame.f_code
        yield f"{code.co_filename}:{frame.f_lineno} in {code.co_qualname}"
