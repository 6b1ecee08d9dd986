"""Serve quart_app: `quart-app` (installed) or `python run.py`, with the same flags:
`[--workers N] [--bind HOST:PORT] [--server granian] [--app module:callable()]`.

Reads the lowercase `[hypercorn]` table of the settings file; the command line wins over it.
One worker is served in this process. More are spawned as hypercorn workers (its `serve()`
ignores `workers`), each binding its own listening socket with SO_REUSEPORT so that the
kernel spreads connections across them: with hypercorn's runner they share one socket, and a
burst of keep-alive connections can land on a single worker (measured: 1,800 instead of
3,100 req/s, in about half the runs). SIGTERM or SIGINT stop accepting connections, let
in-flight requests finish within `graceful_timeout`, run the app's `after_serving` and exit 0.
`--server granian` (or `server = "granian"`) serves the same app on granian instead, with the
same promises (`quart_app.granian_server`).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import ipaddress
import os
import signal
import socket
import sys
import threading
import tomllib
from collections.abc import Callable
from multiprocessing import get_context
from multiprocessing.connection import wait
from typing import Any

from hypercorn.asyncio.run import asyncio_worker, uvloop_worker
from hypercorn.config import Config
from hypercorn.run import run

from . import create_app, granian_server, serving
from .config import (
    as_int,
    as_optional_text,
    as_seconds,
    hypercorn_environment,
    settings_file_path,
)
from .errors import ConfigError
from .logs import ACCESS_LOG_FORMAT
from .metrics_multiprocess import drop_exited_processes, prepare_directory, worker_exited

DEFAULT_APPLICATION = "quart_app:create_app()"
DEFAULTS: dict[str, Any] = {
    "bind": ["127.0.0.1:5000"],
    "workers": 1,
    "graceful_timeout": 10,
    # Longer than common clients keep an idle pooled connection (httpx 5 s, aiohttp 15 s):
    # a server that closes first races the client's next request, which then fails with a
    # reset. 75 s is nginx's default; gunicorn's docs likewise ask for more than the idle
    # timeout of whatever sits in front. A stop closes idle connections at once, so this
    # never delays a shutdown.
    "keep_alive_timeout": 75,
    "backlog": 2048,  # gunicorn's; hypercorn's 100 overflows when 1,000 clients connect at once
    "accesslog": None,
    "access_log_format": ACCESS_LOG_FORMAT,  # hypercorn's, plus the request id
    "server": "hypercorn",
}
# hypercorn's "trio" class needs a Trio app (quart-trio); a Quart app runs on asyncio.
WORKER_FUNCTIONS = {"asyncio": asyncio_worker, "uvloop": uvloop_worker}
SERVERS = ("hypercorn", "granian")
PARENT_CHECK_INTERVAL = 1.0
HIGHEST_PORT = 65535


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", action="append", help="HOST:PORT to listen on (repeatable)")
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument("--server", help="hypercorn (default) or granian")
    parser.add_argument(
        "--app", default=DEFAULT_APPLICATION,
        help=f"the application to serve, as module:callable() (default {DEFAULT_APPLICATION})",
    )
    return parser.parse_args(argv)


def hypercorn_settings() -> dict[str, Any]:
    """DEFAULTS, then the settings file's `[hypercorn]`, then `QUART_HYPERCORN__*`, checked."""
    settings = dict(DEFAULTS)
    path = settings_file_path()
    if path is not None:
        with path.open("rb") as file:
            table = tomllib.load(file).get("hypercorn", {})
        settings.update(checked(table, lambda key: f"hypercorn.{key}"))
    settings.update(checked(hypercorn_environment(), lambda key: f"QUART_HYPERCORN__{key.upper()}"))
    return settings


def checked(table: dict[str, Any], name: Callable[[str], str]) -> dict[str, Any]:
    """`table` with every value checked and normalised; `name(key)` is how errors call it."""
    for key in table:
        if key not in CHECKS:
            raise ConfigError(name(key), table[key], "one of " + ", ".join(sorted(CHECKS)))
    return {key: CHECKS[key](name(key), value) for key, value in table.items()}


def check_binds(name: str, value: Any) -> list[str]:
    binds = [value] if isinstance(value, str) else value
    if not isinstance(binds, list) or not binds:
        raise ConfigError(name, value, 'a list of "HOST:PORT" addresses')
    for bind in binds:
        check_bind(name, bind)
    return binds


def check_bind(name: str, bind: Any) -> None:
    """HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N, as hypercorn reads them.

    hypercorn itself takes a missing or unreadable port as "port 8000" (`127.0.0.1:abc`
    becomes host `127.0.0.1:abc`), and a port out of range as a traceback.
    """
    expected = 'HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N'
    if not isinstance(bind, str):
        raise ConfigError(name, bind, expected)
    if bind.startswith("unix:"):
        if len(bind) == len("unix:"):
            raise ConfigError(name, bind, "unix: followed by a socket path")
        return
    if bind.startswith("fd://"):
        if not (bind[5:].isascii() and bind[5:].isdigit()):
            raise ConfigError(name, bind, "fd:// followed by a file descriptor number")
        return
    if bind.startswith("["):
        host, bracket, rest = bind[1:].partition("]")
        if not bracket or "[" in host or "]" in rest or not rest.startswith(":"):
            raise ConfigError(name, bind, "an IPv6 address in brackets, then :PORT ([::1]:5000)")
        port = rest[1:]
        if not is_ipv6(host):
            raise ConfigError(name, bind, "an IPv6 address inside the brackets ([::1]:5000)")
    else:
        host, colon, port = bind.rpartition(":")
        if not colon:
            raise ConfigError(name, bind, f"{expected}: the port is missing "
                              "(hypercorn would listen on 8000)")
        if ":" in host or "[" in host or "]" in host:
            raise ConfigError(name, bind, "an IPv6 address in brackets, then :PORT ([::1]:5000)")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= HIGHEST_PORT:
        raise ConfigError(name, bind, f"a port from 1 to {HIGHEST_PORT} after the host")
    try:
        socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM,
                           flags=socket.AI_PASSIVE)
    except OSError as error:
        raise ConfigError(name, bind, f"a host that resolves ({error.strerror})") from None


def is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def check_worker_class(name: str, worker_class: Any) -> str:
    if worker_class not in WORKER_FUNCTIONS:
        raise ConfigError(name, worker_class,
                          " or ".join(repr(known) for known in WORKER_FUNCTIONS))
    if worker_class == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigError(name, worker_class,
                          "uvloop installed (pip install uvloop), or 'asyncio'")
    return str(worker_class)


def check_server(name: str, value: Any) -> str:
    if value not in SERVERS:
        raise ConfigError(name, value, " or ".join(repr(server) for server in SERVERS))
    return str(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(name, value, " or ".join(repr(choice) for choice in choices))
    return str(value)


def check_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(name, value, "a string")
    return value


CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "bind": check_binds,
    "workers": lambda name, value: as_int(name, value, minimum=1),
    "graceful_timeout": as_seconds,
    "keep_alive_timeout": as_seconds,
    "read_timeout": lambda name, value: None if value is None else as_seconds(name, value),
    "backlog": lambda name, value: as_int(name, value, minimum=1),
    "h11_max_incomplete_size": lambda name, value: as_int(name, value, minimum=1),
    "worker_class": check_worker_class,
    "accesslog": as_optional_text,
    "errorlog": as_optional_text,
    "access_log_format": check_text,
    "server": check_server,
    # granian only (ignored on hypercorn): quart_app.granian_server says what each does
    "granian_task_impl": lambda name, value: check_choice(name, value, ("asyncio", "rust")),
    "granian_runtime_threads": lambda name, value: as_int(name, value, minimum=1),
    "granian_backpressure": lambda name, value: as_int(name, value, minimum=1),
    # hypercorn's own metrics, sent to a statsd server (hypercorn only)
    "statsd_host": as_optional_text,
    "statsd_prefix": check_text,
    "dogstatsd_tags": check_text,
}


def serving_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The `[hypercorn]` settings with the command line's overrides, checked."""
    settings = hypercorn_settings()
    if args.bind:
        settings["bind"] = check_binds("--bind", args.bind)
    if args.workers is not None:
        settings["workers"] = CHECKS["workers"]("--workers", args.workers)
    if args.server is not None:
        settings["server"] = check_server("--server", args.server)
    settings.setdefault("worker_class", default_worker_class(settings["server"]))
    if settings["server"] == "granian":
        granian_server.server_options(settings)  # its own limits, before anything starts
    return settings


def default_worker_class(server: str) -> str:
    """The event loop a server's workers run on unless `worker_class` says: uvloop on
    granian, asyncio's own on hypercorn. Measured (README, "Serving"): on granian uvloop is
    1.02-1.17x on every scenario; on hypercorn it is 0.99-1.09x, and at 1,000 connections its
    p99 was 3.9 s against 0.5 s, with errors. A checkout without uvloop runs on asyncio."""
    if server == "granian" and importlib.util.find_spec("uvloop") is not None:
        return "uvloop"
    return "asyncio"


def build_config(settings: dict[str, Any], application: str) -> Config:
    workers = settings["workers"]
    config = Config.from_mapping({key: value for key, value in settings.items()
                                  if key != "server" and not key.startswith("granian_")})
    config.application_path = application
    # Spawned workers inherit the environment: each app learns how many siblings it has.
    os.environ["QUART_WORKERS"] = str(workers)
    # hypercorn's runner serves in this process when workers is 0, and spawns N otherwise.
    config.workers = 0 if workers == 1 else workers
    return config


def main(argv: list[str]) -> int:
    serving.install()
    args = parse_args(argv)
    try:
        settings = serving_settings(args)
        config = build_config(settings, args.app)
        listen_error = cannot_listen(config)
        if listen_error:
            return refuse(listen_error)
        create_app()  # fail here, once and readably, rather than in every worker
    except ConfigError as error:
        return refuse(str(error))
    try:
        if settings["server"] == "granian":
            prepare_directory()  # /metrics sums every granian worker's counts too
            try:
                return granian_server.serve(settings, args.app)
            finally:
                drop_exited_processes()  # granian's workers are gone: so are their gauges
        return run(config) if config.workers == 0 else serve_workers(config)
    except OSError as error:  # the port was taken since the check
        return refuse(f"cannot listen on {', '.join(config.bind)}: {error}")


def refuse(message: str) -> int:
    print(f"quart_app: {message}", file=sys.stderr)
    return 2


def cannot_listen(config: Config) -> str | None:
    """Why `config.bind` cannot be listened on, if so, found before the app is built.

    A busy port, or one this user may not open, then stops start-up with one line; a worker
    that cannot bind would fail only after its app had opened its resources, and then never
    exit. A bound socket that does not listen takes no connections, so closing these at
    once is all the check costs. `fd://` sockets are the caller's: they are not touched.
    """
    probe = copy.copy(config)
    probe.bind = [bind for bind in config.bind if not bind.startswith("fd://")]
    try:
        sockets = probe.create_sockets()
    except OSError as error:
        return f"cannot listen on {', '.join(config.bind)}: {error}"
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets):
        sock.close()
    return None


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
    serving.install()  # a spawned process: run.py's main() did not run here
    WORKER_FUNCTIONS[config.worker_class](config=config, sockets=None, shutdown_event=shutdown)


def serve_workers(config: Config) -> int:
    """Spawn `config.workers` workers that each bind their own SO_REUSEPORT socket."""
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
            running.remove(worker)
            worker_exited(worker.pid)
            if worker.exitcode and not exit_code:
                exit_code = worker.exitcode
                shutdown.set()  # one worker failed: stop the others rather than run short
    return exit_code


def run_cli() -> int:
    """The `quart-app` command."""
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
