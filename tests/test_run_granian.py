"""`python run.py --server granian`: what is particular to it (the shared promises are tested
on both servers by test_run.py and test_run_shutdown.py, through `server_flags`)."""

from __future__ import annotations

import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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


def granian_options(*args: str) -> dict[str, object]:
    from quart_app.cli import parse_args, serving_settings
    from quart_app.granian_server import server_options

    return server_options(serving_settings(parse_args([*GRANIAN, *args])))


def test_granian_runs_on_uvloop_with_its_own_defaults_unless_told(settings_file: Path) -> None:
    settings_file.write_text("[hypercorn]\n")
    options = granian_options()
    assert (options["loop"].value, options["task_impl"].value) == ("uvloop", "asyncio")
    assert (options["runtime_threads"], options["backpressure"]) == (1, None)


def test_granians_options_come_from_the_settings_file(settings_file: Path) -> None:
    settings_file.write_text('[hypercorn]\nworker_class = "asyncio"\ngranian_task_impl = "rust"\n'
                             "granian_runtime_threads = 2\ngranian_backpressure = 64\n")
    options = granian_options()
    assert (options["loop"].value, options["task_impl"].value) == ("asyncio", "rust")
    assert (options["runtime_threads"], options["backpressure"]) == (2, 64)


def test_granians_options_come_from_the_environment(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file.write_text('[hypercorn]\ngranian_runtime_threads = 2\n')
    monkeypatch.setenv("QUART_HYPERCORN__WORKER_CLASS", '"asyncio"')
    monkeypatch.setenv("QUART_HYPERCORN__GRANIAN_TASK_IMPL", '"rust"')
    monkeypatch.setenv("QUART_HYPERCORN__GRANIAN_RUNTIME_THREADS", "3")
    options = granian_options()
    assert (options["loop"].value, options["task_impl"].value) == ("asyncio", "rust")
    assert options["runtime_threads"] == 3  # the environment wins over the file


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("GRANIAN_TASK_IMPL", '"tokio"', "expected 'asyncio' or 'rust'"),
    ("GRANIAN_RUNTIME_THREADS", "0", "expected a whole number >= 1"),
    ("GRANIAN_BACKPRESSURE", '"lots"', "expected a whole number >= 1"),
])
def test_a_bad_granian_option_is_one_line_and_exit_2(name: str, value: str,
                                                     expected: str) -> None:
    result = subprocess.run([sys.executable, "run.py", *GRANIAN], cwd=REPO, capture_output=True,
                            text=True, timeout=30, env={"PATH": "/usr/bin:/bin",
                                                        f"QUART_HYPERCORN__{name}": value})
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == [
        f"quart_app: bad setting QUART_HYPERCORN__{name} = {value.strip(chr(34))!r}: {expected}"
        if value.startswith('"') else
        f"quart_app: bad setting QUART_HYPERCORN__{name} = {value}: {expected}"]


def test_granians_options_leave_hypercorns_config_alone(settings_file: Path) -> None:
    from quart_app.cli import build_config, parse_args, serving_settings

    settings_file.write_text('[hypercorn]\ngranian_task_impl = "rust"\n')
    config = build_config(serving_settings(parse_args([])), "quart_app:create_app()")
    assert not hasattr(config, "granian_task_impl")


def test_a_worker_killed_for_outliving_graceful_timeout_is_logged_and_the_stop_is_0(
    tmp_path: Path,
) -> None:
    env = {"QUART_HYPERCORN__GRACEFUL_TIMEOUT": "1"}
    with ServerProcess(*GRANIAN, "--app", "tests.slow_app:create_slow_app()", env=env,
                       log_dir=tmp_path) as server:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.get, server.base_url + "/test/slow?seconds=30", timeout=60)
            server.wait_for_line("test/slow: sleeping")
            assert server.stop() == 0
            with pytest.raises(httpx.HTTPError):
                slow.result()
        assert "refused to gracefully stop" in server.output()
