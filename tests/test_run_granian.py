"""`python run.py --server granian`: the promises run.py makes on hypercorn, on granian."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .server_process import REPO, ServerProcess
from .test_run import SLOW_APP, worker_answers
from .throwaway_redis import free_port

pytest.importorskip("granian")

GRANIAN = ("--server", "granian")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_finishes_in_flight_requests_then_exits_zero(
    tmp_path: Path, stop_signal: int
) -> None:
    with ServerProcess(*GRANIAN, "--app", SLOW_APP, "--workers", "2",
                       log_dir=tmp_path) as server:
        results: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: results.append(
                httpx.get(server.base_url + "/test/slow?seconds=1.5", timeout=10)
            )
        )
        request.start()
        time.sleep(0.5)
        exit_code = server.stop(stop_signal)
        request.join(10)
        assert exit_code == 0, server.output()
        assert results and results[0].status_code == 200, server.output()
        assert results[0].json() == {"slept": 1.5}
        # after_serving ran in both workers: the cache client and the pool were closed.
        assert server.output().count("cache closed") == 2, server.output()
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.base_url + "/healthz", timeout=1)


def test_two_workers_serve_and_each_runs_the_serving_lifecycle(tmp_path: Path) -> None:
    with ServerProcess(*GRANIAN, "--app", SLOW_APP, "--workers", "2",
                       log_dir=tmp_path) as server:
        answers = worker_answers(server, 2)
        assert len(answers) == 2
        assert httpx.get(server.base_url + "/readyz", timeout=5).status_code == 200
        assert server.stop() == 0


def test_sigterm_under_inserts_loses_no_answer(tmp_path: Path) -> None:
    database = tmp_path / "rows.sqlite3"
    env = {"QUART_DATABASE_URL": f"sqlite:///{database}", "QUART_NOTIFY_DELAY": "1.0",
           "QUART_RECEIVERS__NOTIFY": "false"}
    with ServerProcess(*GRANIAN, "--app", SLOW_APP, env=env, log_dir=tmp_path) as server:
        answers: list[httpx.Response] = []

        def insert_many(first_id: int) -> None:
            with httpx.Client(base_url=server.base_url, timeout=10) as client:
                for row_id in range(first_id, first_id + 500):
                    try:
                        answers.append(client.post(
                            "/api/info", json={"id": row_id, "name": "x", "money": "1"}))
                    except httpx.TransportError:
                        return

        # Eight keep-alive clients, each with ids of its own.
        writers = [threading.Thread(target=insert_many, args=(1 + 1000 * n,))
                   for n in range(8)]
        for writer in writers:
            writer.start()
        time.sleep(1)
        assert server.stop() == 0, server.output()
        for writer in writers:
            writer.join(15)
    acknowledged = {a.json()["id"] for a in answers if a.status_code == 201}
    assert acknowledged
    with ServerProcess(*GRANIAN, env=env, log_dir=tmp_path) as reader:
        page = httpx.get(reader.base_url + "/api/info?limit=100", timeout=5).json()
        stored = {row["id"] for row in page["items"]}
        while page["next_cursor"]:
            page = httpx.get(reader.base_url + "/api/info",
                             params={"limit": 100, "cursor": page["next_cursor"]},
                             timeout=5).json()
            stored |= {row["id"] for row in page["items"]}
    # Every insert the client saw answered is stored, and nothing it did not see answered is.
    assert stored == acknowledged


def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    with ServerProcess(*GRANIAN, "--app", SLOW_APP, "--workers", "2",
                       log_dir=tmp_path) as server:
        pids = set(worker_answers(server, 2))
        assert len(pids) == 2 and server.process is not None
        server.process.kill()
        server.process.wait(10)
        deadline = time.monotonic() + 15
        while pids and time.monotonic() < deadline:
            pids = {pid for pid in pids if Path(f"/proc/{pid}").exists()
                    and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()}
            time.sleep(0.1)
        assert not pids, "granian workers kept running after their parent died"


def run_py(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=30)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("quart_app: ")
            and "QUART_SECRET_KEY" not in line]


def test_a_busy_port_exits_2_with_one_line() -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = run_py(*GRANIAN, "--bind", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert len(error_lines(result)) == 1 and "cannot listen" in error_lines(result)[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, words", [
    (("--server", "bogus"), "--server = 'bogus'"),
    ((*GRANIAN, "--bind", "127.0.0.1:5000", "--bind", "127.0.0.1:5001"), "one HOST:PORT"),
], ids=["unknown-server", "two-binds"])
def test_bad_server_settings_exit_2_with_one_line(args: tuple[str, ...], words: str) -> None:
    result = run_py(*args)
    assert result.returncode == 2, result.stderr
    assert [line for line in result.stderr.splitlines() if words in line], result.stderr
    assert "Traceback" not in result.stderr and "usage:" not in result.stderr


def test_the_settings_file_can_choose_granian(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[hypercorn]\nserver = "granian"\n')
    with ServerProcess(env={"QUART_APP_SETTINGS": str(settings)}, log_dir=tmp_path) as server:
        answer = httpx.get(server.base_url + "/healthz", timeout=5)
        assert answer.status_code == 200
        assert answer.headers["server"] == "granian"
