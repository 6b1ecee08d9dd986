"""Serving quart_app on granian, with the promises run.py makes on hypercorn.

Why a second server: on this project's 2-core machine hypercorn's own HTTP handling caps any
app near the Flask original's request rate, while granian's (Rust) HTTP layer leaves nearly
all of the time to the app (bench/README.md has the figures). hypercorn stays the default;
`python run.py --server granian` picks this one.

What run.py's `[hypercorn]` settings become here:
- `bind`: one `HOST:PORT` (granian listens on one address; several are refused);
- `workers`: granian's worker processes; they share one listening socket;
- `backlog`: granian's backlog (granian refuses less than 128);
- `graceful_timeout`: SIGTERM/SIGINT stop accepting, in-flight requests finish, and a worker
  still busy after this many seconds is killed (granian's `workers_kill_timeout`);
- `keep_alive_timeout`: not applied: granian has no idle timeout for HTTP/1 keep-alive
  connections (they stay open until the client closes them);
- `worker_class`: `"uvloop"` (the default) runs the workers on uvloop, `"asyncio"` on
  asyncio's loop;
- `granian_task_impl` (`"asyncio"`, the default, or `"rust"`), `granian_runtime_threads`
  (default 1) and `granian_backpressure` (default: granian's, the backlog divided among the
  workers): granian's own options, ignored on hypercorn; README says what was measured;
- `accesslog`: any value turns granian's access log on (it writes to its own logger);
- `read_timeout`: the seconds granian waits for a request's headers.

Workers are spawned, not forked, so that `/metrics` sums them (`serve`). Granian's workers
keep serving when their parent dies; the factory here (`worker_app`) starts a thread in each
worker that stops it gracefully once the parent is gone, as run.py's hypercorn workers do.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Mapping
from typing import Any

from . import serving
from .errors import ConfigError

APPLICATION_ENV = "QUART_APP_GRANIAN_APPLICATION"
PARENT_ENV = "QUART_APP_GRANIAN_PARENT"
PARENT_CHECK_INTERVAL = 1.0
MIN_BACKLOG = 128

def split_bind(bind: list[str]) -> tuple[str, int]:
    """The one `HOST:PORT` granian listens on (run.py has already checked its form)."""
    if len(bind) != 1:
        raise ConfigError("hypercorn.bind", bind, "one HOST:PORT with --server granian")
    host, _, port = bind[0].rpartition(":")
    return host.strip("[]"), int(port)


def server_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """granian `Server` keyword arguments for run.py's serving settings."""
    from granian.constants import Interfaces, Loops, TaskImpl
    from granian.http import HTTP1Settings

    host, port = split_bind(list(settings["bind"]))
    backlog = int(settings.get("backlog", 2048))
    if backlog < MIN_BACKLOG:
        raise ConfigError("hypercorn.backlog", backlog, f"at least {MIN_BACKLOG} with granian")
    http1 = HTTP1Settings()
    read_timeout = settings.get("read_timeout")
    if read_timeout is not None:
        http1.header_read_timeout = max(1, min(60_000, int(float(read_timeout) * 1000)))
    loop = Loops.uvloop if settings.get("worker_class") == "uvloop" else Loops.asyncio
    return {
        "address": host,
        "port": port,
        "interface": Interfaces.ASGI,
        "workers": int(settings["workers"]),
        "backlog": backlog,
        "http1_settings": http1,
        "loop": loop,
        "log_access": settings.get("accesslog") is not None,
        "workers_kill_timeout": max(1, round(float(settings.get("graceful_timeout", 10)))),
        "factory": True,
        "task_impl": TaskImpl(settings.get("granian_task_impl", "asyncio")),
        "runtime_threads": int(settings.get("granian_runtime_threads", 1)),
        "backpressure": settings.get("granian_backpressure"),
    }


def serve(settings: Mapping[str, Any], application: str) -> int:
    """Serve `application` (`module:callable()` or `module:attribute`) until SIGTERM/SIGINT."""
    from granian.server import Server

    options = server_options(settings)
    # Spawned, not forked (granian forks on Linux by default): a forked worker would inherit
    # this process's prometheus-client, imported before run.py named the metrics directory,
    # and count into its own memory, which no scrape sums; a spawned one starts afresh and
    # writes to that directory. The rest of run.py's process makes no other processes.
    multiprocessing.set_start_method("spawn", force=True)
    os.environ[APPLICATION_ENV] = application
    os.environ[PARENT_ENV] = str(os.getpid())
    server = Server(f"{__name__}:worker_app", **options)
    stopped = _remember_stopped_workers(server)
    try:
        server.serve()
    except RuntimeError as error:  # granian reports a socket it cannot bind this way
        raise OSError(str(error)) from None
    # granian exits the process itself (code 1) when a worker fails; reaching here is a stop,
    # whose status granian does not give. A worker whose stop overran (stop_watch) exited 1:
    # so does run.py. One granian killed after graceful_timeout (a negative status) had its
    # requests cut off, as hypercorn cuts them off then: granian logs it, and the stop is 0.
    return 1 if any((worker.inner.exitcode or 0) > 0 for worker in stopped) else 0


def _remember_stopped_workers(server: Any) -> list[Any]:
    """The workers granian's stop joined: it forgets them once stopped (granian 2.x's
    `_stop_workers` clears `wrks`), and with them their exit statuses."""
    stopped: list[Any] = []
    stop_workers = server._stop_workers

    def stop_and_remember() -> None:
        workers = list(server.wrks)
        stop_workers()
        stopped.extend(workers)

    server._stop_workers = stop_and_remember
    return stopped


def worker_app() -> Any:
    """The app for one granian worker, which stops itself when run.py's process is gone."""
    parent = int(os.environ.get(PARENT_ENV, "0"))
    if parent:
        threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),),
                         name="parent-watch", daemon=True).start()
    serving.mark_served_on_granian()  # before the app is built: see request_body.init_app
    return load_application(os.environ.get(APPLICATION_ENV, "quart_app:create_app()"))


def load_application(application: str) -> Any:
    module_name, _, attribute = application.partition(":")
    call = attribute.endswith("()")
    target = getattr(importlib.import_module(module_name), attribute.removesuffix("()"))
    return target() if call else target


def _stop_when_orphaned(parent_pid: int) -> None:
    while True:
        threading.Event().wait(PARENT_CHECK_INTERVAL)
        if os.getppid() != parent_pid:
            # granian's worker stops gracefully on SIGTERM: in-flight requests finish.
            os.kill(os.getpid(), signal.SIGTERM)
            return
