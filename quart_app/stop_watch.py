"""A stop that cannot hang: past its budget the process says where it waits, and exits.

A process run.py serves stops in steps: the server lets open requests finish
(`graceful_timeout`), then the app's lifespan shutdown waits for Quart's background tasks
(BACKGROUND_TASK_SHUTDOWN_TIMEOUT), ends the `while_serving` generators and runs the
`after_serving` functions (the last visit counts, the bus, the cache, the pool), then the
event loop cancels what is left and joins its threads. Each step of ours is bounded, but one
that waits inside a library, or in a function a user registered, could wait forever; an
orchestrator would then kill the process after its own grace period, and nothing would say why.

So a thread counts down from the moment the stop begins: on hypercorn when the stop is asked
for (`serving` starts it, with `graceful_timeout` + SHUTDOWN_TIMEOUT), on granian when the
lifespan shutdown begins (granian itself kills a worker whose requests outlive
`graceful_timeout`), with SHUTDOWN_TIMEOUT. Past it the thread logs one error line, where
the lifespan and every other asyncio task wait (their await chains: on granian the lifespan
is not an asyncio task, so it is followed from its coroutine) and the stack of every
thread, and exits with status 1: the stop is bounded, the log names the step that hung, and
the status says the stop was not clean.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

logger = logging.getLogger("quart_app")

#: The exit status of a stop that overran: not 0, since the stop did not finish.
OVERRAN_STATUS = 1

ASGIApp = Callable[[Any, Any, Any], Coroutine[Any, Any, None]]

#: The lifespan of the app this process serves (one per process), for the report.
_lifespan: Coroutine[Any, Any, None] | None = None


async def serve_lifespan(asgi_app: ASGIApp, scope: Any, receive: Callable[[], Awaitable[Any]],
                         send: Any, seconds_from_shutdown: float | None) -> None:
    """Run the app's lifespan, known to the report; with `seconds_from_shutdown`, its
    shutdown starts the countdown."""
    global _lifespan

    async def receive_and_watch() -> Any:
        message = await receive()
        if message["type"] == "lifespan.shutdown" and seconds_from_shutdown is not None:
            watch(seconds_from_shutdown, "SHUTDOWN_TIMEOUT")
        return message

    _lifespan = lifespan = asgi_app(scope, receive_and_watch, send)
    await lifespan


def watch(seconds: float, budget: str) -> None:
    """Start the countdown (from the event loop's thread); the process exits before it
    ends if the stop goes well. `budget` names the settings `seconds` comes from."""
    threading.Thread(target=_count_down, args=(seconds, budget, asyncio.get_running_loop()),
                     name="stop-watch", daemon=True).start()


def _count_down(seconds: float, budget: str, loop: asyncio.AbstractEventLoop) -> None:
    time.sleep(seconds)
    logger.error("the stop did not finish within %s (%.1f s): exiting with status %d; what "
                 "it was waiting for follows", budget, seconds, OVERRAN_STATUS)
    try:
        sys.stderr.write(report(loop, _lifespan))
    except Exception:  # the report is best effort; the exit below is not
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        os._exit(OVERRAN_STATUS)


def report(loop: asyncio.AbstractEventLoop, lifespan: Coroutine[Any, Any, Any] | None) -> str:
    """Where the lifespan waits, then each other unfinished task of `loop`, outermost first.

    Read from another thread while the loop may still run: a task can finish meanwhile,
    which at worst shows a chain one step out of date.
    """
    lines = []
    if lifespan is not None:
        lines.append("the app's lifespan waits at:\n")
        lines.extend(f"    {where}\n" for where in _described(_awaited_by(lifespan)))
    for task in asyncio.all_tasks(loop):
        chain = list(_awaited_by(task.get_coro()))
        if lifespan is not None and any(awaitable is lifespan for awaitable in chain):
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
