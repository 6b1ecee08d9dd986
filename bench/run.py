"""Benchmark quart_app against the seed's Flask app and against hypercorn's ceiling.

One command runs every scenario: for each run it starts each peer server, waits for it to
answer, primes it, drives it with wrk (1 s warm-up, then the measured run) while sampling the
RSS of its worker processes, stops it, and checks what the load tool saw (every acknowledged
insert is in the table; read-after-own-write; notifications delivered). Peers alternate
(A B C A B C ...), each scenario gets --runs runs per peer, and the medians go into one
markdown table, printed and written to bench/results/latest.md.

    .venv/bin/python bench/run.py            # everything, 5 s per run (~15 min)
    .venv/bin/python bench/run.py --quick    # 2 s per run
    .venv/bin/python bench/run.py --scenarios get-mem,insert-url --peers flask,ceiling
    .venv/bin/python bench/run.py --list

A peer whose readiness check fails is skipped, with the reason, for the rest of the run.
More scenarios (e.g. issue 7's scenario 7, cache scaling) plug in through
bench/extra_scenarios.py: see load_extras().
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pymysql
import redis

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
LOGS = RESULTS / "logs"
WRK_DIR = BENCH / "wrk"
FLASK_DIR = BENCH / "flask_original"

QUART_PYTHON = Path(os.environ.get("BENCH_QUART_PYTHON", sys.executable))
BENCH_VENV = Path(os.environ.get("BENCH_VENV", str(BENCH / ".flask-venv")))

MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
DB_NAME = os.environ.get("BENCH_DB_NAME", "quart_app_bench")
# Database 14: the tests use 15 and may be running at the same time.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

SEED_ROWS = 50  # rows present before any scenario, so the list view has a full page
INT_MAX = 2**31 - 1
SLOW_NOTIFY_MS = 200

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS info (
    id INT PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    money DECIMAL(12,2) NOT NULL,
    seq BIGINT NOT NULL AUTO_INCREMENT UNIQUE
)
"""

CacheKind = Literal["memory", "redis"]
Role = Literal["quart_app", "flask", "ceiling"]


# --- What the servers are asked to be, and the peers ------------------------------------


@dataclass(frozen=True)
class Settings:
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
    # Counts delivered slow notifications in the server's log; None: cannot tell.
    notify_log: re.Pattern[str] | None = None
    probe: bool = True  # run the scenarios' probes (the ceiling answers anything with 200)


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


PEERS: dict[str, Peer] = {
    "quart_app": Peer(
        name="quart_app",
        role="quart_app",
        command=quart_command(),
        env=quart_env,
        cwd=REPO,
        ready_path="/healthz",
        notify_log=re.compile(r"notification sent"),
    ),
    # The same app and settings on granian (run.py --server granian).
    "granian": Peer(
        name="granian",
        role="quart_app",
        command=quart_command("--server", "granian"),
        env=quart_env,
        cwd=REPO,
        ready_path="/healthz",
        notify_log=re.compile(r"notification sent"),
    ),
    # The two above with METRICS = false, to measure what counting for /metrics costs
    # (not in the default --peers: bench/README.md, "What metrics cost").
    "quart_app-nometrics": Peer(
        name="quart_app-nometrics",
        role="quart_app",
        command=quart_command(),
        env=quart_env_without_metrics,
        cwd=REPO,
        ready_path="/healthz",
        notify_log=re.compile(r"notification sent"),
    ),
    "granian-nometrics": Peer(
        name="granian-nometrics",
        role="quart_app",
        command=quart_command("--server", "granian"),
        env=quart_env_without_metrics,
        cwd=REPO,
        ready_path="/healthz",
        notify_log=re.compile(r"notification sent"),
    ),
    "flask": Peer(
        name="flask",
        role="flask",
        # As a Flask user deploys it: gunicorn, gthread, 2 workers x 8 threads, reuse-port.
        # (--no-control-socket only stops gunicorn 27 from creating ~/.gunicorn/gunicorn.ctl.)
        command=lambda port, s: [
            str(BENCH_VENV / "bin" / "gunicorn"),
            "--workers",
            str(s.workers),
            "--worker-class",
            "gthread",
            "--threads",
            "8",
            "--reuse-port",
            "--graceful-timeout",
            "10",
            "--no-control-socket",
            "--bind",
            f"127.0.0.1:{port}",
            "app:app",
        ],
        env=flask_env,
        cwd=FLASK_DIR,
        ready_path="/",
        notify_log=re.compile(r"notification delivered"),
    ),
    # Served by run.py itself (its --app option), so the ceiling has exactly run.py's
    # settings and worker model on each server.
    "ceiling": Peer(
        name="ceiling",
        role="ceiling",
        command=quart_command("--app", "bench.ceiling:app"),
        env=lambda s: {},
        cwd=REPO,
        ready_path="/",
        probe=False,
    ),
    "ceiling-granian": Peer(
        name="ceiling-granian",
        role="ceiling",
        command=quart_command("--server", "granian", "--app", "bench.ceiling:app"),
        env=lambda s: {},
        cwd=REPO,
        ready_path="/",
        probe=False,
    ),
}


# --- Scenarios --------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One request that must work on a peer before a scenario is measured on it.

    `{id}` in path or body becomes a fresh insert id; with `inserts`, that row must then be
    in the table (a catch-all `/<name>` route answering 200 to `/info` is not an insert).
    """

    method: str
    path: str
    body: str | None = None
    status: tuple[int, ...] = (200,)
    contains: str = ""  # the body must contain this
    inserts: bool = False


GET_PROBE = Probe("GET", "/get", contains="8888")
LIST_PROBE = Probe("GET", "/api/info", contains='"id"')
URL_INSERT_PROBE = Probe("GET", "/info?id={id}&name=probe&money=1.50", inserts=True)
POST_INSERT_PROBE = Probe(
    "POST", "/api/info", '{"id": {id}, "name": "probe", "money": "1.50"}', (201,), inserts=True
)
# The seed's row 1 given its own values (nothing changes): the update route must exist.
UPDATE_PROBE = Probe("PUT", "/api/info/1", '{"name": "seed1", "money": "10.25"}', (200,),
                     contains='"name":"seed1"')
BULK_PROBE = Probe(
    "POST", "/api/info/bulk", '[{"id": {id}, "name": "probe", "money": "1.50"}]', (200,),
    contains='"status":201', inserts=True,
)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    description: str
    script: str  # file in bench/wrk/
    path: str = "/"  # URL path wrk is given (the insert scripts build their own)
    settings: Settings = Settings()
    connections: int = 64
    threads: int = 2
    inserts: bool = False  # the script inserts rows with unique ids: verify them
    with_ceiling: bool = True
    prime_get: bool = False  # GET / on every worker first, so /get has its key
    probes: tuple[Probe, ...] = ()
    rows_per_request: int = 1  # bulk loads: rows each request inserts (req/s x this = rows/s)


# fmt: off
MEM, REDIS = Settings(cache="memory"), Settings(cache="redis")
REDIS_LOCAL = Settings(cache="redis", local_tier=True)
C32: dict[str, Any] = {"connections": 32, "threads": 32, "inserts": True, "with_ceiling": False}

SCENARIOS: list[Scenario] = [
    Scenario("get-mem", "1. cached read `/get`, memory", "GET /get, memory cache",
             "read.lua", "/get", MEM, prime_get=True, probes=(GET_PROBE,)),
    Scenario("get-redis", "1. cached read `/get`, Redis", "GET /get, Redis cache",
             "read.lua", "/get", REDIS, prime_get=True, probes=(GET_PROBE,)),
    Scenario("template", "2. template `/alice`", "GET /alice renders index.html",
             "read.lua", "/alice", MEM, probes=(Probe("GET", "/alice", contains="alice"),)),
    Scenario("list-mem", "3. cached list `/api/info`, memory", "GET /api/info, memory cache",
             "read.lua", "/api/info", MEM, probes=(LIST_PROBE,)),
    Scenario("list-redis", "3. cached list `/api/info`, Redis", "GET /api/info, Redis cache",
             "read.lua", "/api/info", REDIS, probes=(LIST_PROBE,)),
    Scenario("list-redis-local", "3. cached list `/api/info`, Redis + local tier",
             "GET /api/info, Redis cache; quart_app with CACHE_LOCAL (Flask: plain Redis)",
             "read.lua", "/api/info", REDIS_LOCAL, probes=(LIST_PROBE,)),
    Scenario("insert-url", "4. insert, seed URL, c32", "GET /info?id=..&name=..&money=..",
             "insert_url.lua", settings=MEM, probes=(URL_INSERT_PROBE,), **C32),
    Scenario("insert-post", "4. insert, `POST /api/info`, c32", "POST /api/info (JSON)",
             "insert_post.lua", settings=MEM, probes=(POST_INSERT_PROBE,), **C32),
    Scenario("mixed-redis", "5. mixed 95/5, Redis", "95% GET /api/info, 5% POST, Redis cache",
             "mixed.lua", settings=REDIS, probes=(LIST_PROBE, POST_INSERT_PROBE), **C32),
    Scenario("mixed-redis-local", "5. mixed 95/5, Redis + local tier",
             "as mixed-redis; quart_app with CACHE_LOCAL (Flask: plain Redis)", "mixed.lua",
             settings=REDIS_LOCAL, probes=(LIST_PROBE, POST_INSERT_PROBE), **C32),
    Scenario("mixed-mem", "5. mixed 95/5, memory", "as mixed-redis, per-process memory cache",
             "mixed.lua", settings=MEM, probes=(LIST_PROBE, POST_INSERT_PROBE), **C32),
    Scenario("c1000-get", "6. 1,000 connections `/get`", "GET /get, 1,000 keep-alive clients",
             "read.lua", "/get", MEM, connections=1000, prime_get=True, probes=(GET_PROBE,)),
    # Rows per second, not requests: the Flask original can only insert one row per request,
    # so its figure to compare with is scenario 4's (the report says so below the table).
    Scenario("bulk", "9. bulk load, 1,000 rows per request (rows/s)",
             "POST /api/info/bulk, 1,000 rows per request, 2 connections", "bulk.lua",
             settings=MEM, connections=2, threads=2, inserts=True, with_ceiling=False,
             rows_per_request=1000, probes=(BULK_PROBE,)),
    # quart_app only: the Flask original has no update or delete route (its probe fails).
    Scenario("mixed-changes", "10. mixed with updates and deletes, Redis",
             "GET /api/info and /api/info/<id>; POST, PUT/PATCH/DELETE with If-Match; Redis",
             "mixed_changes.lua", settings=REDIS, probes=(LIST_PROBE, UPDATE_PROBE), **C32),
    Scenario("notify-slow", "8. insert + 200 ms notification, c32",
             "seed URL inserts, 200 ms notification receiver", "insert_url.lua",
             settings=Settings(slow_notify_ms=SLOW_NOTIFY_MS), probes=(URL_INSERT_PROBE,),
             **C32),
]
# fmt: on


def load_extras() -> tuple[list[Scenario], Callable[[argparse.Namespace], str] | None]:
    """Hook for scenarios this file does not define (issue 7's scenario 7: key-count scaling).

    bench/extra_scenarios.py, if present, may define `SCENARIOS: list[Scenario]` (more wrk
    scenarios, e.g. with Settings(workers=1)) and/or `def extra_report(args) -> str`
    returning markdown appended to the report (e.g. in-process cache get latency at 1k,
    100k and 1M keys, bytes per key).
    """
    path = BENCH / "extra_scenarios.py"
    if not path.exists():
        return [], None
    spec = importlib.util.spec_from_file_location("bench_extra_scenarios", path)
    if spec is None or spec.loader is None:
        return [], None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return list(getattr(module, "SCENARIOS", [])), getattr(module, "extra_report", None)


# --- Environment: wrk, the Flask venv, MariaDB, Redis -----------------------------------


def ensure_bench_venv() -> None:
    """Create/refresh the Flask peer's venv from bench/flask_original/requirements.txt."""
    req = FLASK_DIR / "requirements.txt"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    stamp = BENCH_VENV / ".requirements.sha256"
    if (BENCH_VENV / "bin" / "gunicorn").exists() and stamp.exists():
        if stamp.read_text().strip() == digest:
            return
    print(f"setting up the Flask peer's venv at {BENCH_VENV} ...", flush=True)
    if not (BENCH_VENV / "bin" / "python").exists():
        subprocess.run(["python3", "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "-q", "-r", str(req)], check=True)
    stamp.write_text(digest + "\n")


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk not found: run bench/setup.sh (apt-get install -y wrk)")
    return wrk


def mysql(database: str | None = DB_NAME) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(**MYSQL, database=database, autocommit=True)


def prepare_database(keep: bool) -> None:
    conn = mysql(None)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DB_NAME}`")
        cur.execute(f"USE `{DB_NAME}`")
        cur.execute(CREATE_TABLE)
        if not keep:
            cur.execute("TRUNCATE TABLE info")
        cur.execute("SELECT COUNT(*) FROM info WHERE id BETWEEN 1 AND %s", (SEED_ROWS,))
        if cur.fetchone()[0] == 0:
            cur.executemany(
                "INSERT INTO info (id, name, money) VALUES (%s, %s, %s)",
                [(i, f"seed{i}", f"{i * 10}.25") for i in range(1, SEED_ROWS + 1)],
            )
    conn.close()


_reserved_top = 0  # highest id handed out by allocate_ids() in this process


def allocate_ids(count: int) -> int:
    """First id of a block of `count` ids above every id in the table or handed out before."""
    global _reserved_top
    conn = mysql()
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM info")
        top = max(int(cur.fetchone()[0]), _reserved_top)
    conn.close()
    base = (top // 1000 + 1) * 1000
    if base + count - 1 > INT_MAX:
        raise RuntimeError("insert ids would pass INT max: run without --keep-data")
    _reserved_top = base + count - 1
    return base


def count_rows(ranges: list[tuple[int, int]]) -> list[int]:
    conn = mysql()
    out = []
    with conn.cursor() as cur:
        for lo, hi in ranges:
            cur.execute("SELECT COUNT(*) FROM info WHERE id BETWEEN %s AND %s", (lo, hi))
            out.append(int(cur.fetchone()[0]))
    conn.close()
    return out


def flush_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Server processes -------------------------------------------------------------------


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            out.append(child)
            todo.append(child)
    return out


def worker_pids(root: int) -> list[int]:
    """The server's workers: its descendants, less multiprocessing's helper processes."""
    pids = []
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" in cmdline or b"semaphore_tracker" in cmdline:
            continue
        pids.append(pid)
    # One worker is served in the server process itself (run.py with --workers 1).
    return pids or [root]


def status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak of the summed VmRSS of the worker processes, sampled every 0.2 s."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.2)

    def sample(self) -> None:
        total = sum(status_kib(p, "VmRSS") for p in worker_pids(self.root))
        self.peak_kib = max(self.peak_kib, total)

    def hwm_kib(self) -> int:
        return sum(status_kib(p, "VmHWM") for p in worker_pids(self.root))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class PeerNotReady(Exception):
    pass


@dataclass
class Server:
    peer: Peer
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@contextlib.contextmanager
def running(peer: Peer, settings: Settings, log_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **peer.env(settings)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            peer.command(port, settings),
            cwd=peer.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, ours to clean up
        )
    server = Server(peer, port, proc, log_path)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(server)


def wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        code = server.proc.poll()
        if code is not None:
            raise PeerNotReady(f"exited with code {code}: {server.log_tail()}")
        try:
            status, _ = http_get(server.port, server.peer.ready_path, timeout=1.0)
            if status == 200:
                # Every worker must be up, not just the first: give the rest a moment.
                time.sleep(0.5)
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise PeerNotReady(
        f"GET {server.peer.ready_path} not 200 within {timeout:.0f} s ({last}): {server.log_tail()}"
    )


def stop(server: Server) -> None:
    proc = server.proc
    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            print(f"  {server.peer.name}: no exit 20 s after SIGTERM, killing its group")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait(timeout=10)
    # Workers left behind by the leader (there should be none) go too: they would keep the
    # port with SO_REUSEPORT and answer the next peer's requests.
    for _ in range(50):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def prime(server: Server) -> None:
    """GET / on fresh connections until every worker has cached 'name', then check /get."""
    for _ in range(16 * server_workers(server)):
        http_get(server.port, "/")
    bad = 0
    for _ in range(32):
        status, _ = http_get(server.port, "/get")
        bad += status != 200
    if bad:
        print(f"  {server.peer.name}: {bad}/32 GET /get after priming were not 200")


class ProbeFailed(Exception):
    pass


def http_request(
    port: int, method: str, path: str, body: str | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def run_probes(server: Server, scenario: Scenario) -> None:
    """Check that the routes the scenario drives exist and do their job on this peer."""
    if not server.peer.probe:
        return
    for probe in scenario.probes:
        id_ = allocate_ids(1)
        path = probe.path.replace("{id}", str(id_))
        body = probe.body.replace("{id}", str(id_)) if probe.body else None
        what = f"{probe.method} {path}"
        try:
            status, data = http_request(server.port, probe.method, path, body)
        except OSError as exc:
            raise ProbeFailed(f"{what}: {exc}") from exc
        if status not in probe.status:
            raise ProbeFailed(f"{what} answered {status}: {data[:120]!r}")
        if probe.contains and probe.contains.encode() not in data:
            raise ProbeFailed(f"{what}: body lacks {probe.contains!r}: {data[:120]!r}")
        if probe.inserts and count_rows([(id_, id_)]) != [1]:
            raise ProbeFailed(f"{what} answered {status} but wrote no row {id_}")
    if scenario.settings.slow_notify_ms:
        pattern = server.peer.notify_log
        if pattern is None:
            return
        deadline = time.monotonic() + 3 + scenario.settings.slow_notify_ms / 1000
        while time.monotonic() < deadline:
            if pattern.search(server.log_path.read_text(errors="replace")):
                return
            time.sleep(0.1)
        raise ProbeFailed(
            f"no {pattern.pattern!r} in its log after a probe insert: "
            "slow notification receiver not switched on?"
        )


def server_workers(server: Server) -> int:
    return max(1, len(worker_pids(server.proc.pid)))


# --- wrk --------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    status_errors: int  # wrk's count of status > 399
    threads: list[dict[str, Any]]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non2xx(self) -> int:
        return sum(int(t["non2xx"]) for t in self.threads)

    @property
    def errors(self) -> int:
        # Scripts with a response() count every non-2xx themselves; plain reads rely on wrk.
        return self.socket_errors + (self.non2xx if self.threads else self.status_errors)

    def acked_ranges(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for t in self.threads:
            r = [int(x) for x in t["ranges"]]
            out.extend(zip(r[0::2], r[1::2], strict=True))
        return out


def run_wrk(
    scenario: Scenario, port: int, seconds: int, timeout_s: int, base: int, stride: int
) -> WrkResult:
    argv = [
        "wrk",
        "-t",
        str(scenario.threads),
        "-c",
        str(scenario.connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{timeout_s}s",
        "-s",
        str(WRK_DIR / scenario.script),
        f"http://127.0.0.1:{port}{scenario.path}",
    ]
    if scenario.inserts:
        argv += ["--", f"base={base}", f"stride={stride}", f"rows={scenario.rows_per_request}"]
    env = {**os.environ, "BENCH_WRK_DIR": str(WRK_DIR)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    errors = data["errors"]
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["latency_us"]["p50"] / 1000,
        p99_ms=data["latency_us"]["p99"] / 1000,
        socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
        status_errors=int(errors["status"]),
        threads=data["threads"],
    )


# --- One run of one peer in one scenario ------------------------------------------------


@dataclass
class RunRecord:
    scenario: str
    peer: str
    run: int
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    rss_peak_mib: float = 0.0
    rss_hwm_mib: float = 0.0
    acked: int = 0
    acked_missing: int = 0  # acknowledged inserts not in the table: must be 0
    rows_unacked: int = 0  # rows written whose answer wrk never saw (cut at the deadline)
    checked: int = 0
    stale: int = 0
    notify_expected: int = -1
    notify_delivered: int = -1
    error: str = ""
    notes: list[str] = field(default_factory=list)


def notifications(log_path: Path, pattern: re.Pattern[str] | None) -> int:
    if pattern is None:
        return 0
    return len(pattern.findall(log_path.read_text(errors="replace")))


def settle(
    log_path: Path, pattern: re.Pattern[str], ranges: list[tuple[int, int]], before: int
) -> None:
    """Before stopping the server, let the notifications of the last inserts go out.

    Waits until the delivered count reaches the rows written, or stops growing for 2 s
    (at most 30 s). A server's graceful stop need not wait for them: this is not that test.
    """
    deadline = time.monotonic() + 30
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        delivered = notifications(log_path, pattern) - before
        if delivered >= sum(count_rows(ranges)):
            return
        if delivered != last:
            last, still_since = delivered, time.monotonic()
        elif time.monotonic() - still_since > 2:
            return
        time.sleep(0.2)


def id_stride(seconds: int) -> int:
    # Room for ~5,000 inserts/s per thread, far above anything 2 cores do.
    return 10_000 + 5_000 * seconds


def run_once(scenario: Scenario, peer: Peer, run: int, args: argparse.Namespace) -> RunRecord:
    rec = RunRecord(scenario.key, peer.name, run)
    settings = scenario.settings
    flush_redis()
    log_path = LOGS / f"{scenario.key}.{peer.name}.{run}.log"
    stride = id_stride(args.duration) * scenario.rows_per_request
    insert_ranges: list[tuple[int, int]] = []  # every id range wrk could have written
    acked: list[tuple[int, int]] = []

    def wrk(port: int, seconds: int) -> WrkResult:
        base = 0
        if scenario.inserts:
            base = allocate_ids(scenario.threads * stride)
            insert_ranges.append((base, base + scenario.threads * stride - 1))
        res = run_wrk(scenario, port, seconds, args.timeout, base, stride)
        acked.extend(res.acked_ranges())
        return res

    with running(peer, settings, log_path) as server:
        if scenario.prime_get:
            prime(server)
        run_probes(server, scenario)
        # Notifications of the probe inserts are not the run's.
        notified_before = notifications(log_path, peer.notify_log)
        if args.warmup:
            wrk(server.port, args.warmup)
        with RssSampler(server.proc.pid) as rss:
            res = wrk(server.port, args.duration)
        rec.rss_hwm_mib = rss.hwm_kib() / 1024
        rec.rss_peak_mib = rss.peak_kib / 1024
        if settings.slow_notify_ms and peer.notify_log is not None:
            settle(log_path, peer.notify_log, insert_ranges, notified_before)
    # The server is stopped (gracefully): everything it was going to write is written.
    rec.rps, rec.p50_ms, rec.p99_ms, rec.errors = res.rps, res.p50_ms, res.p99_ms, res.errors
    rec.rps *= scenario.rows_per_request
    rec.checked = sum(int(t["checked"]) for t in res.threads)
    rec.stale = sum(int(t["stale"]) for t in res.threads)
    if scenario.inserts:
        present = count_rows(acked)
        rec.acked = sum(hi - lo + 1 for lo, hi in acked)
        rec.acked_missing = rec.acked - sum(present)
        written = sum(count_rows(insert_ranges))
        rec.rows_unacked = written - sum(present)
        if settings.slow_notify_ms:
            rec.notify_expected = written
            if peer.notify_log is not None:
                delivered = notifications(log_path, peer.notify_log)
                rec.notify_delivered = delivered - notified_before
    return rec


# --- Report -----------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(x: float, digits: int = 0) -> str:
    if x != x:  # nan
        return "—"
    return f"{x:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    if a != a or b != b or b == 0:
        return "—"
    return f"{a / b:.2f}"


def version_of(python: Path, dist: str) -> str:
    try:
        out = subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def machine_line() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk_version = "?"
    with contextlib.suppress(OSError, IndexError):
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        wrk_version = (out.stdout + out.stderr).split()[1]
    mariadb = "?"
    with contextlib.suppress(Exception):
        conn = mysql(None)
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            mariadb = str(cur.fetchone()[0])
        conn.close()
    redis_version = "?"
    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(REDIS_URL)
        redis_version = str(client.info("server")["redis_version"])
        client.close()
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; quart_app side: Quart "
        f"{version_of(QUART_PYTHON, 'quart')}, Hypercorn {version_of(QUART_PYTHON, 'hypercorn')}; "
        f"Flask side: Flask {version_of(BENCH_VENV / 'bin' / 'python', 'flask')}, "
        f"Flask-Caching {version_of(BENCH_VENV / 'bin' / 'python', 'flask-caching')}, "
        f"gunicorn {version_of(BENCH_VENV / 'bin' / 'python', 'gunicorn')}; "
        f"MariaDB {mariadb}, Redis {redis_version}, wrk {wrk_version}"
    )


def settings_drift() -> str:
    """Where run.py's effective hypercorn settings differ from the ceiling's, if anywhere."""
    from ceiling import HYPERCORN_SETTINGS  # bench/ is on sys.path when run as a script

    code = "import json, run; print(json.dumps(run.hypercorn_settings(), default=str))"
    try:
        out = subprocess.run(
            [str(QUART_PYTHON), "-c", code],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **quart_env(Settings())},
        )
        theirs: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return "could not read run.py's hypercorn settings (run.hypercorn_settings())"
    diffs = []
    for key, ours in sorted(HYPERCORN_SETTINGS.items()):
        if key in theirs and theirs[key] != ours:
            diffs.append(f"{key}: run.py {theirs[key]!r}, ceiling {ours!r}")
    for key in sorted(set(theirs) - set(HYPERCORN_SETTINGS) - {"bind", "workers", "server"}):
        diffs.append(f"{key}: run.py {theirs[key]!r}, ceiling hypercorn's default")
    return "; ".join(diffs)


def checks_cell(scenario: Scenario, by_peer: dict[str, list[RunRecord]]) -> str:
    parts = []
    for name, recs in by_peer.items():
        if not recs:
            continue
        bits = []
        if scenario.inserts:
            bits.append(
                f"acked {sum(r.acked for r in recs):,}, missing "
                f"{sum(r.acked_missing for r in recs)}"
            )
        if any(r.checked for r in recs):
            bits.append(f"stale {sum(r.stale for r in recs)}/{sum(r.checked for r in recs):,}")
        if scenario.settings.slow_notify_ms:
            delivered = [r.notify_delivered for r in recs]
            if min(delivered) < 0:
                bits.append("notifications: not countable")
            else:
                bits.append(f"notified {sum(delivered):,}/{sum(r.notify_expected for r in recs):,}")
        if bits:
            parts.append(f"{name}: " + ", ".join(bits))
    return "; ".join(parts) or ""


def bulk_comparison(records: list[RunRecord]) -> str:
    """Bulk rows/s against the Flask original's one-row-per-request inserts (scenario 4)."""
    flask = med([r.rps for r in records
                 if r.scenario == "insert-url" and r.peer == "flask" and not r.error])
    parts = []
    for peer in ("quart_app", "granian"):
        rows = med([r.rps for r in records
                    if r.scenario == "bulk" and r.peer == peer and not r.error])
        if rows == rows and flask == flask:  # both measured (NaN otherwise)
            parts.append(f"{peer} {fmt(rows)} rows/s, {ratio(rows, flask)}x")
    if not parts:
        return ""
    return (f"Bulk load against the Flask original's seed-URL inserts ({fmt(flask)} rows/s, one "
            "row per request, all it can do): " + "; ".join(parts) + ".")


def report(
    scenarios: list[Scenario],
    records: list[RunRecord],
    skipped: dict[str, str],
    scenario_skips: list[str],
    args: argparse.Namespace,
    started: dt.datetime,
) -> str:
    order = [name for name in PEERS if any(r.peer == name for r in records)]
    short = {"quart_app": "q", "granian": "g", "flask": "F", "ceiling": "c",
             "ceiling-granian": "cg", "quart_app-nometrics": "qn", "granian-nometrics": "gn"}
    compared = [name for name in order if name != "flask"]
    each = " / ".join(short[name] for name in order)
    lines = [
        f"Run {started:%Y-%m-%d %H:%M} UTC, {args.runs} runs per peer, {args.duration} s each "
        f"after {args.warmup} s warm-up, peers alternating; medians.",
        "",
        f"Machine: {machine_line()}.",
        "",
        "Peers: " + ", ".join(f"{short[name]} = {name}" for name in order) + ".",
        "",
        "| scenario | "
        + " | ".join(f"req/s {short[name]}" for name in order)
        + "".join(f" | {short[name]}/F" for name in compared if "flask" in order)
        + f" | p50 ms {each} | p99 ms {each} | errors {each} | worker RSS MiB {each} | checks |",
        "|---|" + "---:|" * (len(order) + len(compared) * ("flask" in order)) + "---|" * 5,
    ]
    for sc in scenarios:
        by_peer: dict[str, list[RunRecord]] = {
            p: [r for r in records if r.scenario == sc.key and r.peer == p and not r.error]
            for p in order
        }
        rps = {p: med([r.rps for r in rs]) for p, rs in by_peer.items()}

        def per_peer(getter: Callable[[list[RunRecord]], str],
                     by: dict[str, list[RunRecord]]) -> str:
            return " / ".join(getter(by[p]) if by[p] else "—" for p in order)

        ratios = ([ratio(rps[name], rps["flask"]) if by_peer[name] else "—"
                   for name in compared] if "flask" in order else [])
        lines.append(
            "| "
            + " | ".join(
                [
                    sc.title,
                    *(fmt(rps[name]) if by_peer[name] else "—" for name in order),
                    *ratios,
                    per_peer(lambda rs: fmt(med([r.p50_ms for r in rs]), 1), by_peer),
                    per_peer(lambda rs: fmt(med([r.p99_ms for r in rs]), 1), by_peer),
                    per_peer(lambda rs: str(sum(r.errors for r in rs)), by_peer),
                    per_peer(lambda rs: fmt(med([r.rss_peak_mib for r in rs]), 0), by_peer),
                    checks_cell(sc, by_peer),
                ]
            )
            + " |"
        )
    bulk_line = bulk_comparison(records)
    if bulk_line:
        lines += ["", bulk_line]
    lines.append("")
    lines.append(
        "Errors are summed over the runs (socket errors + non-2xx). Worker RSS is the peak of "
        "the summed VmRSS of the server's worker processes, sampled every 0.2 s. The ceiling "
        'only runs the read scenarios. "missing" counts inserts wrk saw acknowledged that '
        'are not in the table; "stale" counts list reads right after an own insert that '
        "did not contain it."
    )
    drift = settings_drift() if any(r.peer == "ceiling" for r in records) else ""
    if drift:
        lines.append("")
        lines.append(f"Note: quart_app's hypercorn settings differ from the ceiling's: {drift}.")
    failures = [r for r in records if r.error]
    if skipped or failures or scenario_skips:
        lines.append("")
        for name, why in skipped.items():
            lines.append(f"- {name} skipped: {why}")
        for line in scenario_skips:
            lines.append(f"- skipped {line}")
        for r in failures:
            lines.append(f"- {r.scenario} / {r.peer} run {r.run} failed: {r.error}")
    return "\n".join(lines) + "\n"


# --- Main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="quart_app vs Flask original vs ceiling")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per peer and scenario")
    parser.add_argument("--quick", action="store_true", help="2 s runs")
    parser.add_argument("--timeout", type=int, default=5, help="wrk request timeout, s")
    parser.add_argument("--scenarios", default="", help="comma-separated keys (default all)")
    parser.add_argument("--peers", default="quart_app,granian,flask,ceiling,ceiling-granian")
    parser.add_argument("--keep-data", action="store_true", help="do not empty `info` first")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.md")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extra_scenarios, extra_report = load_extras()
    all_scenarios = SCENARIOS + extra_scenarios
    if args.list:
        for sc in all_scenarios:
            print(f"{sc.key:12} {sc.description}")
        return 0
    wanted = [k for k in args.scenarios.split(",") if k]
    scenarios = [s for s in all_scenarios if not wanted or s.key in wanted]
    unknown = set(wanted) - {s.key for s in all_scenarios}
    if unknown:
        sys.exit(f"unknown scenarios: {', '.join(sorted(unknown))} (see --list)")
    peers = [PEERS[p] for p in args.peers.split(",") if p]

    require_wrk()
    if any(p.role == "flask" for p in peers):
        ensure_bench_venv()
    prepare_database(args.keep_data)
    RESULTS.mkdir(exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    records: list[RunRecord] = []
    skipped: dict[str, str] = {}
    scenario_skips: list[str] = []
    raw = (RESULTS / "latest.raw").open("w")

    for sc in scenarios:
        active = [p for p in peers if p.role != "ceiling" or sc.with_ceiling]
        print(f"== {sc.key}: {sc.description}", flush=True)
        not_here: set[str] = set()
        for run in range(1, args.runs + 1):
            for peer in active:  # A B C, A B C, ...
                if peer.name in skipped or peer.name in not_here:
                    continue
                t0 = time.monotonic()
                try:
                    rec = run_once(sc, peer, run, args)
                except PeerNotReady as exc:
                    skipped[peer.name] = f"readiness check GET {peer.ready_path} failed: {exc}"
                    print(f"  {peer.name}: SKIPPED, {skipped[peer.name]}", flush=True)
                    continue
                except ProbeFailed as exc:
                    not_here.add(peer.name)
                    why = f"probe failed, {exc}"
                    print(f"  {peer.name}: SKIPPED in {sc.key}, {why}", flush=True)
                    scenario_skips.append(f"{sc.key} / {peer.name}: {why}")
                    continue
                except Exception as exc:
                    rec = RunRecord(sc.key, peer.name, run, error=f"{type(exc).__name__}: {exc}")
                records.append(rec)
                raw.write(json.dumps(rec.__dict__) + "\n")
                raw.flush()
                print(
                    f"  run {run} {peer.name:9} {rec.rps:9,.0f} req/s  p50 {rec.p50_ms:6.1f} ms"
                    f"  p99 {rec.p99_ms:7.1f} ms  err {rec.errors}  rss {rec.rss_peak_mib:5.0f} MiB"
                    + (f"  acked {rec.acked} missing {rec.acked_missing}" if sc.inserts else "")
                    + (f"  stale {rec.stale}/{rec.checked}" if rec.checked else "")
                    + (
                        f"  notified {rec.notify_delivered}/{rec.notify_expected}"
                        if rec.notify_expected >= 0
                        else ""
                    )
                    + (f"  ERROR {rec.error}" if rec.error else "")
                    + f"  ({time.monotonic() - t0:.0f} s)",
                    flush=True,
                )
    raw.close()
    text = report(scenarios, records, skipped, scenario_skips, args, started)
    if extra_report is not None:
        text += "\n" + extra_report(args)
    args.out.write_text(text)
    print()
    print(text)
    bad = [r for r in records if r.acked_missing]
    if bad:
        print("FAIL: acknowledged inserts missing from the table:", file=sys.stderr)
        for r in bad:
            print(f"  {r.scenario} {r.peer} run {r.run}: {r.acked_missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
