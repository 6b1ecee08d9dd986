"""The peers: how each server is started, with which environment, for a run's settings.

`--peers quart_app@uvloop` names a peer with a variant's settings on top (`VARIANTS`), so a
setting can be measured against its default in one alternating run.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .places import BENCH_VENV, DB_NAME, FLASK_DIR, QUART_PYTHON, REDIS_URL, REPO

CacheKind = Literal["memory", "redis"]
Role = Literal["quart_app", "bare", "flask", "ceiling"]


@dataclass(frozen=True)
class Settings:
    """What the servers are asked to be in a scenario."""

    cache: CacheKind = "memory"
    slow_notify_ms: int = 0
    workers: int = 2
    local_tier: bool = False  # quart_app's CACHE_LOCAL (Redis only); the others ignore it


@dataclass(frozen=True)
class Peer:
    name: str
    role: Role
    command: Callable[[int, Settings], list[str]]  # (port, settings) -> argv
    env: Callable[[Settings], dict[str, str]]
    cwd: Path
    ready_path: str
    # Counts delivered slow notifications in the server's log; None: it sends none.
    notify_log: re.Pattern[str] | None = None
    probe: bool = True  # run the scenarios' probes (the ceiling answers anything with 200)
    short: str = ""  # its column name in the report


def quart_env(s: Settings) -> dict[str, str]:
    env = {
        "QUART_CACHE_TYPE": "RedisCache" if s.cache == "redis" else "SimpleCache",
        "QUART_CACHE_REDIS_URL": REDIS_URL,
        "QUART_DATABASE_URL": f"mysql://root@127.0.0.1:3306/{DB_NAME}",
    }
    if os.environ.get("BENCH_QUART_SETTINGS"):  # opt-in: another settings file for the peer
        env["QUART_APP_SETTINGS"] = os.environ["BENCH_QUART_SETTINGS"]
    # The Flask peer logs its per-request receivers at DEBUG; quart_app's at INFO would write
    # a line per render and per insert, so it logs warnings only, except where the harness
    # counts the "notification sent" lines.
    env["QUART_LOG_LEVEL"] = "INFO" if s.slow_notify_ms else "WARNING"
    if s.local_tier:
        env["QUART_CACHE_LOCAL"] = "true"
    if s.slow_notify_ms:
        env["QUART_RECEIVERS__NOTIFY"] = "true"
        env["QUART_NOTIFY_DELAY"] = str(s.slow_notify_ms / 1000)
    return env


def quart_env_without_metrics(s: Settings) -> dict[str, str]:
    """quart_app's settings with `METRICS = false`: no /metrics, no counting."""
    return {**quart_env(s), "QUART_METRICS": "false"}


def flask_env(s: Settings) -> dict[str, str]:
    return {
        "FLASK_PEER_CACHE_TYPE": "RedisCache" if s.cache == "redis" else "SimpleCache",
        "FLASK_PEER_REDIS_URL": REDIS_URL,
        "FLASK_PEER_DB_NAME": DB_NAME,
        "FLASK_PEER_SLOW_NOTIFY_MS": str(s.slow_notify_ms),
    }


def quart_command(*extra: str) -> Callable[[int, Settings], list[str]]:
    """run.py with the peer's own arguments, the run's worker count and a fresh port."""
    return lambda port, s: [
        str(QUART_PYTHON), "run.py", *extra, "--workers", str(s.workers),
        "--bind", f"127.0.0.1:{port}",
    ]


def flask_command(port: int, s: Settings) -> list[str]:
    # As a Flask user deploys it: gunicorn, gthread, 2 workers x 8 threads, reuse-port.
    # (--no-control-socket only stops gunicorn 27 from creating ~/.gunicorn/gunicorn.ctl.)
    return [
        str(BENCH_VENV / "bin" / "gunicorn"), "--workers", str(s.workers),
        "--worker-class", "gthread", "--threads", "8", "--reuse-port",
        "--graceful-timeout", "10", "--no-control-socket", "--bind", f"127.0.0.1:{port}",
        "app:app",
    ]


NOTIFY_SENT = re.compile(r"notification sent")


def quart_peer(name: str, short: str, *extra: str,
               env: Callable[[Settings], dict[str, str]] = quart_env) -> Peer:
    return Peer(name=name, role="quart_app", command=quart_command(*extra), env=env, cwd=REPO,
                ready_path="/healthz", notify_log=NOTIFY_SENT, short=short)


def run_py_peer(name: str, short: str, role: Role, *extra: str) -> Peer:
    """Another app served by run.py itself (its --app), with run.py's settings and workers."""
    return Peer(name=name, role=role, command=quart_command(*extra),
                env=quart_env if role == "bare" else lambda s: {}, cwd=REPO,
                ready_path="/healthz" if role == "bare" else "/", probe=role != "ceiling",
                short=short)


GRANIAN = ("--server", "granian")
BARE = ("--app", "bench.quart_bare:app")
CEILING = ("--app", "bench.ceiling:app")

PEERS: dict[str, Peer] = {peer.name: peer for peer in (
    quart_peer("quart_app", "q"),
    # The same app and settings on granian (run.py --server granian).
    quart_peer("granian", "g", *GRANIAN),
    # The two above with METRICS = false, to measure what counting for /metrics costs
    # (not in the default --peers: bench/README.md, "What metrics cost").
    quart_peer("quart_app-nometrics", "qn", env=quart_env_without_metrics),
    quart_peer("granian-nometrics", "gn", *GRANIAN, env=quart_env_without_metrics),
    # Bare Quart doing the tutorial's work with the same cache and store: what quart_app's
    # own layers cost on top of Quart.
    run_py_peer("quart-bare", "b", "bare", *BARE),
    run_py_peer("quart-bare-granian", "bg", "bare", *GRANIAN, *BARE),
    Peer(name="flask", role="flask", command=flask_command, env=flask_env, cwd=FLASK_DIR,
         ready_path="/", notify_log=re.compile(r"notification delivered"), short="F"),
    # The bare ASGI callable, served by run.py so that it has run.py's settings exactly.
    run_py_peer("ceiling", "c", "ceiling", *CEILING),
    run_py_peer("ceiling-granian", "cg", "ceiling", *GRANIAN, *CEILING),
)}

DEFAULT_PEERS = "quart_app,granian,quart-bare,quart-bare-granian,flask,ceiling,ceiling-granian"

#: `peer@variant` (or `peer@a+b`): quart_app's settings (run.py's environment) on top.
VARIANTS: dict[str, dict[str, str]] = {
    "uvloop": {"QUART_HYPERCORN__WORKER_CLASS": '"uvloop"'},
    "asyncio": {"QUART_HYPERCORN__WORKER_CLASS": '"asyncio"'},
    "rust": {"QUART_HYPERCORN__GRANIAN_TASK_IMPL": '"rust"'},
    "rt2": {"QUART_HYPERCORN__GRANIAN_RUNTIME_THREADS": "2"},
    "bp64": {"QUART_HYPERCORN__GRANIAN_BACKPRESSURE": "64"},
    "nometrics": {"QUART_METRICS": "false"},
}


class UnknownPeer(ValueError):
    pass


def peer_of(spec: str) -> Peer:
    """The peer `name` or `name@variant[+variant...]`."""
    name, _, variants = spec.partition("@")
    if name not in PEERS:
        raise UnknownPeer(f"unknown peer {name!r}: one of {', '.join(PEERS)}")
    base = PEERS[name]
    if not variants:
        return base
    extra: dict[str, str] = {}
    for variant in variants.split("+"):
        if variant not in VARIANTS:
            raise UnknownPeer(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}")
        extra.update(VARIANTS[variant])
    env = base.env
    return dataclasses.replace(base, name=spec, env=lambda s: {**env(s), **extra},
                               short=f"{base.short}@{variants}")
