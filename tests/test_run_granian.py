"""`python run.py --server granian`: what is particular to it (the shared promises are tested
on both servers by test_run.py and test_run_shutdown.py, through `server_flags`)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .server_process import REPO, ServerProcess
from .support import free_port

pytest.importorskip("granian")

GRANIAN = ("--server", "granian")


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
        assert server.stop() == 0
    assert "served without run.py" not in server.output()  # run.py did start it
