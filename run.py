"""Serve quart_app with hypercorn: `python run.py [--workers N] [--bind HOST:PORT]`.

Reads the lowercase `[hypercorn]` table of the settings file; the command line wins over it.
One worker is served in this process. More are spawned as hypercorn workers (its `serve()`
ignores `workers`), each binding its own listening socket with SO_REUSEPORT so that the
kernel spreads connections across them: with hypercorn's runner they share one socket, and a
burst of keep-alive connections can land on a single worker (measured: 1,800 instead of
3,100 req/s, in about half the runs). SIGTERM or SIGINT stop accepting connections, let
in-flight requests finish within `graceful_timeout`, run the app's `after_serving` and exit 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import threading
import tomllib
from multiprocessing import get_context
from multiprocessing.connection import wait
from typing import Any

from hypercorn.asyncio.run import asyncio_worker, uvloop_worker
from hypercorn.config import Config
from hypercorn.run import run

from quart_app import create_app, granian_server
from quart_app.config import settings_file_path
from quart_app.errors import ConfigError
from quart_app.logs import ACCESS_LOG_FORMAT
from quart_app.metrics_multiprocess import prepare_directory, worker_exited

DEFAULT_APPLICATION = "quart_app:create_app()"
DEFAULTS: dict[str, Any] = {
    "bind": ["127.0.0.1:5000"],
    "workers": 1,
    "graceful_timeout": 10,
    "keep_alive_timeout": 5,
    "backlog": 2048,  # gunicorn's; hypercorn's 100 overflows when 1,000 clients connect at once
    "accesslog": None,
    "server": "hypercorn",
    "access_log_format": ACCESS_LOG_FORMAT,  # hypercorn's, plus the request id
}
KNOWN_KEYS = {
    "bind", "workers", "graceful_timeout", "keep_alive_timeout", "accesslog", "errorlog",
    "backlog", "worker_class", "read_timeout", "h11_max_incomplete_size", "access_log_format",
    "server",
}
# hypercorn's "trio" class needs a Trio app (quart-trio); a Quart app runs on asyncio.
WORKER_FUNCTIONS = {"asyncio": asyncio_worker, "uvloop": uvloop_worker}
SERVERS = ("hypercorn", "granian")
PARENT_CHECK_INTERVAL = 1.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", action="append", help="HOST:PORT to listen on (repeatable)")
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument("--server",
                        help="hypercorn (default) or granian")
    parser.add_argument(
        "--app", default=DEFAULT_APPLICATION,
        help=f"the application to serve, as module:callable() (default {DEFAULT_APPLICATION})",
    )
    return parser.parse_args(argv)


def hypercorn_settings() -> dict[str, Any]:
    settings = dict(DEFAULTS)
    path = settings_file_path()
    if path is not None:
        with path.open("rb") as file:
            table = tomllib.load(file).get("hypercorn", {})
        unknown = set(table) - KNOWN_KEYS
        if unknown:
            raise ConfigError(f"hypercorn.{sorted(unknown)[0]}", table[sorted(unknown)[0]],
                              "one of " + ", ".join(sorted(KNOWN_KEYS)))
        settings.update(table)
    return settings


def serving_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The `[hypercorn]` table with the command line's overrides, checked."""
    settings = hypercorn_settings()
    if args.server is not None:
        settings["server"] = args.server
    if settings["server"] not in SERVERS:
        raise ConfigError("hypercorn.server", settings["server"],
                          " or ".join(repr(name) for name in SERVERS))
    if args.bind:
        settings["bind"] = args.bind
    if args.workers is not None:
        settings["workers"] = args.workers
    workers = settings["workers"]
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError("hypercorn.workers", workers, "a whole number >= 1")
    check_worker_class(settings.get("worker_class", "asyncio"))
    # Spawned workers inherit the environment: each app learns how many siblings it has.
    os.environ["QUART_WORKERS"] = str(workers)
    return settings


def build_config(settings: dict[str, Any], application: str) -> Config:
    config = Config.from_mapping({k: v for k, v in settings.items() if k != "server"})
    config.application_path = application
    workers: int = settings["workers"]
    # hypercorn's runner serves in this process when workers is 0, and spawns N otherwise.
    config.workers = 0 if workers == 1 else workers
    return config


def check_worker_class(worker_class: Any) -> None:
    if worker_class not in WORKER_FUNCTIONS:
        raise ConfigError("hypercorn.worker_class", worker_class,
                          " or ".join(repr(name) for name in WORKER_FUNCTIONS))
    if worker_class == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigError("hypercorn.worker_class", worker_class,
                          "uvloop installed (pip install uvloop), or 'asyncio'")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        settings = serving_settings(args)
        config = build_config(settings, args.app)
        create_app()  # fail here, once and readably, rather than in every worker
        if settings["server"] == "granian":
            granian_server.server_options(settings)  # its own limits, before anything starts
    except ConfigError as error:
        print(f"quart_app: {error}", file=sys.stderr)
        return 2
    try:
        if settings["server"] == "granian":
            check_bind(config)
            prepare_directory()  # /metrics sums every granian worker's counts too
            return granian_server.serve(settings, args.app)
        return run(config) if config.workers == 0 else serve_workers(config)
    except OSError as error:
        print(f"quart_app: cannot listen on {', '.join(config.bind)}: {error}", file=sys.stderr)
        return 2


def run_worker(config: Config, shutdown: Any, parent_pid: int) -> None:
    """One worker: hypercorn's, binding its own socket, and stopping if the parent dies.

    A parent killed with SIGKILL cannot tell its workers to stop; without this they would
    keep serving on the port with nobody left to stop them.
    """
    def stop_when_orphaned() -> None:
        while not shutdown.wait(PARENT_CHECK_INTERVAL):
            if os.getppid() != parent_pid:
                shutdown.set()
                return

    threading.Thread(target=stop_when_orphaned, name="parent-watch", daemon=True).start()
    WORKER_FUNCTIONS[config.worker_class](config=config, sockets=None, shutdown_event=shutdown)


def check_bind(config: Config) -> None:
    """Raise OSError now if an address cannot be bound, before any worker starts."""
    sockets = config.create_sockets()
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets):
        sock.close()


def serve_workers(config: Config) -> int:
    """Spawn `config.workers` workers that each bind their own SO_REUSEPORT socket."""
    # Bind once here first: a worker that cannot bind fails only after the app's start-up
    # has opened its resources, and then never exits. A bound socket that does not listen
    # takes no connections, so closing these at once is all the check costs.
    check_bind(config)
    prepare_directory()  # /metrics sums every worker's counts; set before they start
    context = get_context("spawn")
    shutdown = context.Event()
    # Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole group): the parent alone
    # decides when to stop, and tells every worker through `shutdown`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    workers = [
        context.Process(target=run_worker,
                        args=(config, shutdown, os.getpid()))
        for _ in range(config.workers)
    ]
    for worker in workers:
        worker.start()
    for name in ("SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), lambda *_: shutdown.set())
    exit_code = 0
    running = list(workers)
    while running:
        for finished in wait([worker.sentinel for worker in running]):
            worker = next(w for w in running if w.sentinel == finished)
            worker.join()
            worker_exited(worker.pid)
            running.remove(worker)
            if worker.exitcode and not exit_code:
                exit_code = worker.exitcode
                shutdown.set()  # one worker failed: stop the others rather than run short
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
