"""`python run.py` as users run it: hypercorn, workers, signals, bad settings."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .server_process import REPO, ServerProcess, clean_env, worker_answers
from .support import free_port

SLOW_APP = "tests.slow_app:create_slow_app()"
#: A stop's budgets cut short, for the tests of a stop that overruns them.
QUICK_STOP = {"QUART_SHUTDOWN_TIMEOUT": "2", "QUART_BACKGROUND_TASK_SHUTDOWN_TIMEOUT": "1",
              "QUART_HYPERCORN__GRACEFUL_TIMEOUT": "1"}


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_finishes_in_flight_requests_then_exits_zero(
    tmp_path: Path, stop_signal: int, server_flags: tuple[str, ...]
) -> None:
    with ServerProcess(*server_flags, "--app", SLOW_APP, log_dir=tmp_path) as server:
        results: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: results.append(
                httpx.get(server.base_url + "/test/slow?seconds=1.5", timeout=10)
            )
        )
        request.start()
        time.sleep(0.5)  # the request is in flight
        exit_code = server.stop(stop_signal)
        request.join(10)
        assert exit_code == 0, server.output()
        assert results and results[0].status_code == 200
        assert results[0].json() == {"slept": 1.5}
        if "hypercorn" in server_flags:
            # Answered after the stop began: the client is told not to reuse the connection.
            assert results[0].headers["connection"] == "close"
        assert "cache closed" in server.output()  # after_serving ran
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.base_url + "/healthz", timeout=1)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stop_that_hangs_is_cut_off_with_where_it_waited_and_status_1(
    tmp_path: Path, server_flags: tuple[str, ...], workers: str
) -> None:
    app = "tests.slow_app:create_app_that_hangs_when_stopping()"
    # granian kills a worker graceful_timeout after the stop began, whatever it does: here
    # the lifespan's SHUTDOWN_TIMEOUT ends first, so the worker says where it waits.
    env = {**QUICK_STOP, "QUART_HYPERCORN__GRACEFUL_TIMEOUT": "5"} if (
        "granian" in server_flags) else QUICK_STOP
    with ServerProcess(*server_flags, "--app", app, "--workers", workers, env=env,
                       log_dir=tmp_path) as server:
        assert httpx.get(server.base_url + "/healthz").status_code == 200
        assert server.stop() == 1
        output = server.output()
        budget = ("SHUTDOWN_TIMEOUT (2.0 s)" if "granian" in server_flags
                  else "graceful_timeout + SHUTDOWN_TIMEOUT (3.0 s)")
        assert output.count(f"the stop did not finish within {budget}") == int(workers)
        assert "in create_app_that_hangs_when_stopping.<locals>.wait_forever" in output


def test_a_request_that_ignores_cancellation_cannot_hold_the_stop(
    tmp_path: Path, server_flags: tuple[str, ...]
) -> None:
    app = "tests.slow_app:create_app_with_a_view_that_ignores_cancellation()"
    with ServerProcess(*server_flags, "--app", app, env=QUICK_STOP, log_dir=tmp_path) as server:
        with ThreadPoolExecutor(1) as pool:
            stubborn = pool.submit(httpx.get, server.base_url + "/test/stubborn", timeout=60)
            server.wait_for_line("test/stubborn: started")
            if "granian" in server_flags:  # granian kills the worker after graceful_timeout
                assert server.stop() == 0
                with pytest.raises(httpx.HTTPError):
                    stubborn.result()
                assert "refused to gracefully stop" in server.output()
            else:  # the stop watch ends it, and says where it waited
                assert server.stop() == 1
                assert_cut_off(stubborn.result())
                assert ("in create_app_with_a_view_that_ignores_cancellation.<locals>.stubborn"
                        in server.output())


def test_a_request_still_running_after_graceful_timeout_is_answered_503_on_hypercorn(
    tmp_path: Path,
) -> None:
    with ServerProcess("--app", SLOW_APP, env=QUICK_STOP, log_dir=tmp_path) as server:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.get, server.base_url + "/test/slow?seconds=30", timeout=60)
            server.wait_for_line("test/slow: sleeping")
            assert server.stop() == 0
            assert_cut_off(slow.result())
        assert "Error in ASGI Framework" not in server.output()


def assert_cut_off(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["connection"] == "close"
    assert response.json()["error"] == "server_stopping"


def test_two_workers_really_run(tmp_path: Path, server_flags: tuple[str, ...]) -> None:
    with ServerProcess(*server_flags, "--app", SLOW_APP, "--workers", "2",
                       log_dir=tmp_path) as server:
        assert len(worker_answers(server, 2)) == 2
        assert server.stop() == 0
        assert server.output().count("cache closed") == 2


def test_workers_stop_when_the_parent_is_killed(
    tmp_path: Path, server_flags: tuple[str, ...]
) -> None:
    with ServerProcess(*server_flags, "--app", SLOW_APP, "--workers", "2",
                       log_dir=tmp_path) as server:
        pids = set(worker_answers(server, 2))
        assert len(pids) == 2 and server.process is not None
        server.process.kill()  # SIGKILL: the parent cannot tell anyone
        server.process.wait(10)
        deadline = time.monotonic() + 15
        while pids and time.monotonic() < deadline:
            pids = {pid for pid in pids if Path(f"/proc/{pid}").exists()
                    and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()}
            time.sleep(0.1)
        assert not pids, "workers kept running after their parent died"


def test_tutorial_routes_over_http(tmp_path: Path) -> None:
    with ServerProcess(log_dir=tmp_path) as server:
        assert httpx.get(server.base_url + "/get").status_code == 404
        assert httpx.get(server.base_url + "/").text == "index"
        assert httpx.get(server.base_url + "/get").text == "8888"
        assert server.stop() == 0
        assert "served without run.py" not in server.output()


def test_unreachable_redis_at_start_still_serves(tmp_path: Path) -> None:
    env = {"QUART_CACHE_TYPE": "RedisCache",
           "QUART_CACHE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with ServerProcess(env=env, log_dir=tmp_path) as server:
        assert httpx.get(server.base_url + "/healthz").status_code == 200
        ready = httpx.get(server.base_url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["down"] == ["cache"]
        assert server.stop() == 0


def test_bad_setting_exits_with_one_clear_line(tmp_path: Path) -> None:
    env = {"QUART_CACHE_TYPE": "Bogus", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "run.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "quart_app: bad setting CACHE_TYPE = 'Bogus': expected SimpleCache, RedisCache, "
        "RedisSentinelCache, RedisClusterCache, MemcachedCache or NullCache, or the import "
        "path of a factory(app, config, args, options) returning a backend"
    )


def settings_with_hypercorn(tmp_path: Path, lines: str) -> dict[str, str]:
    """The repo's settings file with more keys in its [hypercorn] table."""
    settings = tmp_path / "settings.toml"
    settings.write_text((REPO / "settings.toml").read_text() + lines + "\n")
    return {"QUART_APP_SETTINGS": str(settings)}


UVLOOP = "uvloop.Loop"
ASYNCIO = "asyncio.unix_events._UnixSelectorEventLoop"


@pytest.mark.parametrize(("workers", "setting", "loop"), [
    ("1", "", "default"),  # the server's: uvloop on granian, asyncio's own on hypercorn
    ("2", "", "default"),
    ("1", 'worker_class = "uvloop"', UVLOOP),
    ("2", 'worker_class = "uvloop"', UVLOOP),
    ("1", 'worker_class = "asyncio"', ASYNCIO),
    ("2", 'worker_class = "asyncio"', ASYNCIO),
    ("2", "env", ASYNCIO),  # QUART_HYPERCORN__WORKER_CLASS
])
def test_every_worker_runs_on_the_configured_loop(
    tmp_path: Path, server_flags: tuple[str, ...], workers: str, setting: str, loop: str
) -> None:
    if loop == "default":
        loop = UVLOOP if "granian" in server_flags else ASYNCIO
    if setting == "env":
        env = {"QUART_HYPERCORN__WORKER_CLASS": '"asyncio"'}
    else:
        env = settings_with_hypercorn(tmp_path, setting)
    with ServerProcess(*server_flags, "--app", SLOW_APP, "--workers", workers, env=env,
                       log_dir=tmp_path) as server:
        answers = worker_answers(server, int(workers))
        assert len(answers) == int(workers)
        assert {answer["loop"] for answer in answers.values()} == {loop}
        assert server.stop() == 0


def test_an_unsupported_worker_class_exits_with_one_clear_line(tmp_path: Path) -> None:
    env = {**settings_with_hypercorn(tmp_path, 'worker_class = "trio"'), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "run.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "quart_app: bad setting hypercorn.worker_class = 'trio': expected 'asyncio' or 'uvloop'"
    )


@pytest.mark.parametrize("workers", [None, "2"], ids=["workers-unknown", "QUART_WORKERS=2"])
def test_hypercorn_command_line_serves_the_factory_and_says_what_it_cannot_know(
    tmp_path: Path, workers: str | None
) -> None:
    port = free_port()
    log_path = tmp_path / "hypercorn.log"
    env = clean_env({"QUART_WORKERS": workers} if workers else {})
    process = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}",
         "quart_app:create_app()"],
        cwd=REPO, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert response.text == "index"
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    warnings = [line for line in log_path.read_text().splitlines()
                if "[WARNING] quart_app: served without run.py" in line]
    assert len(warnings) == 1, log_path.read_text()
    for unknown in ("[hypercorn] table is not read", "backlog 100", "keep_alive_timeout 5 s",
                    "drop its answer"):
        assert unknown in warnings[0]
    assert ("number of workers is unknown" in warnings[0]) is (workers is None)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_exits_with_one_clear_line(tmp_path: Path, workers: str) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "run.py", "--workers", workers, "--bind", f"127.0.0.1:{port}"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    # One line: the port is tried before the app is built, so nothing is logged before it.
    assert result.stderr == (
        f"quart_app: cannot listen on 127.0.0.1:{port}: [Errno 98] Address already in use\n"
    )


def listen_backlogs(port: int) -> list[int]:
    """Send-Q of each socket listening on `port`: for a listener, ss shows its backlog."""
    lines = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [int(line.split()[2]) for line in lines]


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_listening_socket_has_the_configured_backlog(tmp_path: Path, workers: str) -> None:
    with (REPO / "settings.toml").open("rb") as file:
        backlog = tomllib.load(file)["hypercorn"]["backlog"]
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    with ServerProcess("--app", SLOW_APP, "--workers", workers, log_dir=tmp_path) as server:
        # Each worker listens once its app has started: wait for all of them.
        deadline = time.monotonic() + 20
        while len(listen_backlogs(server.port)) < int(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listen_backlogs(server.port) == [min(backlog, somaxconn)] * int(workers)
