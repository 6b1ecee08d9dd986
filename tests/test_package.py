"""The package as a user installs it: a wheel built from the repo, in a fresh virtualenv.

Slow (a venv and its dependencies, about 15 s), so it runs once, with everything it checks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .server_process import REPO
from .support import free_port


def run(*command: str | Path, cwd: Path | None = None) -> None:
    result = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wheel_installs_and_quart_app_serves_from_another_directory(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ and *.egg-info/ into the source tree.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "instance", ".*_cache", "bench"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", source)
    (wheel,) = (tmp_path / "dist").glob("quart_app-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "-q", wheel)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("QUART_", "VIRTUAL_ENV", "PYTHONPATH"))}
    server = subprocess.Popen([str(venv / "bin" / "quart-app"), "--bind", f"127.0.0.1:{port}"],
                              cwd=elsewhere, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        page = httpx.get(base + "/alice", timeout=5)
        assert page.status_code == 200 and "Hello, alice" in page.text  # the templates
        created = httpx.post(base + "/api/info", json={"name": "a", "money": "1"}, timeout=5)
        assert created.status_code == 201, created.text  # the schema, the SQLite store
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    databases = list(venv.rglob("*.sqlite3"))
    assert [path.relative_to(venv).parts[:2] for path in databases] == [
        ("var", "quart_app-instance")], databases  # Quart's instance folder of an install
    assert not list(elsewhere.iterdir())  # nothing written to the working directory


def test_run_py_and_the_command_share_their_flags() -> None:
    from quart_app.cli import parse_args

    result = subprocess.run([sys.executable, "run.py", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 0
    for option in ("--bind", "--workers", "--server", "--app"):
        assert option in result.stdout
    assert parse_args(["--server", "granian"]).server == "granian"
