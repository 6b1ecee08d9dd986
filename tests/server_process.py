"""A real `python run.py` process for end-to-end tests: start, wait until it answers, stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from .support import free_port

REPO = Path(__file__).resolve().parent.parent
#: SHUTDOWN_TIMEOUT of test servers: with graceful_timeout (10), less than `stop` waits.
STOP_BUDGET = 10


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the developer's QUART_* settings, plus `env`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("QUART_")},
            **(env or {})}


def run_py(*args: str, env: dict[str, str] | None = None,
           prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`python run.py ARGS` that is expected to exit by itself (a refused setting)."""
    return subprocess.run([*prefix, sys.executable, "run.py", *args], cwd=REPO,
                          env=clean_env(env), capture_output=True, text=True, timeout=60)


class ServerProcess:
    """`python run.py` on a free port, given as `--bind` or, with `bind_in_env`, as
    QUART_HYPERCORN__BIND."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, log_dir: Path,
                 bind_in_env: bool = False) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"server-{self.port}.log"
        bind = f"127.0.0.1:{self.port}"
        self.args = [sys.executable, "run.py", *([] if bind_in_env else ["--bind", bind]), *args]
        self.env = clean_env(env)
        # A stop that hangs ends (with where it waited, in the log) before `stop` gives up.
        self.env.setdefault("QUART_SHUTDOWN_TIMEOUT", str(STOP_BUDGET))
        if bind_in_env:
            self.env["QUART_HYPERCORN__BIND"] = json.dumps([bind])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait_path: str = "/healthz", timeout: float = 20) -> None:
        log = self.log_path.open("wb")
        # A group of its own: killing it on a failed test kills the workers too.
        self.process = subprocess.Popen(
            self.args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"run.py exited early:\n{self.output()}")
            try:
                if httpx.get(self.base_url + wait_path, timeout=1).status_code < 500:
                    self._wait_for_granian_workers(deadline)
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"run.py did not answer within {timeout} s:\n{self.output()}")

    def _wait_for_granian_workers(self, deadline: float) -> None:
        """On granian, until every worker has started: a request that reached a worker still
        starting waited past httpx's 5 s now and then in full test runs (never alone)."""
        if "granian" not in self.args:
            return
        args = self.args
        workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
        while self.output().count("Started worker-") < workers and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"run.py did not exit within {timeout} s of signal {sig}; its log:\n"
                f"{self.output()[-6000:]}") from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_line(self, line: str, timeout: float = 10) -> None:
        """Until the server's log holds `line` (a request it logs has reached the view)."""
        deadline = time.monotonic() + timeout
        while line not in self.output() and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def worker_answers(server: ServerProcess, workers: int) -> dict[int, dict[str, str]]:
    """`/test/pid` from each worker (pid -> answer), or from as many as answered in 20 s."""
    answers: dict[int, dict[str, str]] = {}
    deadline = time.monotonic() + 20

    def ask() -> dict[str, str]:
        # A new connection each time, so the kernel can hand it to either worker.
        answer: dict[str, str] = httpx.get(server.base_url + "/test/pid", timeout=5).json()
        return answer

    # Several at once: on granian's one shared socket, a free worker can take every
    # connection of a client that sends one request at a time.
    with ThreadPoolExecutor(8) as pool:
        while len(answers) < workers and time.monotonic() < deadline:
            for answer in pool.map(lambda _: ask(), range(8)):
                answers[int(answer["pid"])] = answer
    return answers
