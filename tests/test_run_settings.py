"""run.py's settings: every bad bind and hypercorn value is one line and exit 2, and the
[hypercorn] table can be set from the environment like every other setting."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

import run

from .server_process import ServerProcess, run_py, worker_answers

SLOW_APP = "tests.slow_app:create_slow_app()"


def refused_with(result: subprocess.CompletedProcess[str], line: str) -> None:
    """run.py exited 2 and all it wrote on stderr is `line`."""
    assert result.returncode == 2, result.stderr
    assert result.stderr == line + "\n"


def main_refuses(capsys: pytest.CaptureFixture[str], argv: list[str], line: str) -> None:
    """run.py's main, in this process, refuses `argv` before it binds: exit 2, one line."""
    assert main_stderr(capsys, argv) == line + "\n"


def main_stderr(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("QUART_WORKERS", "1")  # main sets it for its workers: undo that
        assert run.main(argv) == 2
    return capsys.readouterr().err


def test_a_port_out_of_range_is_one_line_not_a_traceback() -> None:
    refused_with(run_py("--bind", "127.0.0.1:99999"), "quart_app: bad setting --bind = "
                 "'127.0.0.1:99999': expected a port from 1 to 65535 after the host")


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("127.0.0.1:99999", "a port from 1 to 65535 after the host"),
        ("127.0.0.1:0", "a port from 1 to 65535 after the host"),
        ("127.0.0.1:http", "a port from 1 to 65535 after the host"),
        ("127.0.0.1:\uff15\uff10\uff10\uff10", "a port from 1 to 65535 after the host"),
        ("127.0.0.1", "HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N: the port is missing "
                      "(hypercorn would listen on 8000)"),
        ("[::1:5000", "an IPv6 address in brackets, then :PORT ([::1]:5000)"),
        ("::1]:5000", "an IPv6 address in brackets, then :PORT ([::1]:5000)"),
        ("::1:5000", "an IPv6 address in brackets, then :PORT ([::1]:5000)"),
        ("[::1]5000", "an IPv6 address in brackets, then :PORT ([::1]:5000)"),
        ("[localhost]:5000", "an IPv6 address inside the brackets ([::1]:5000)"),
        ("fd://three", "fd:// followed by a file descriptor number"),
    ],
)
def test_a_bad_bind_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], bind: str, expected: str
) -> None:
    main_refuses(capsys, ["--bind", bind],
                 f"quart_app: bad setting --bind = {bind!r}: expected {expected}")


def test_an_unresolvable_host_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = main_stderr(capsys, ["--bind", "no-such-host.invalid:5000"])
    # "Name or service not known", or another reason on a machine without DNS.
    assert err.startswith("quart_app: bad setting --bind = 'no-such-host.invalid:5000': "
                          "expected a host that resolves (")
    assert err.count("\n") == 1


def test_a_bind_without_port_in_the_settings_file_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[hypercorn]\nbind = ["127.0.0.1"]\n')
    monkeypatch.setenv("QUART_APP_SETTINGS", str(settings))
    main_refuses(capsys, [],
                 "quart_app: bad setting hypercorn.bind = '127.0.0.1': expected HOST:PORT, "
                 "[IPv6]:PORT, unix:PATH or fd://N: the port is missing (hypercorn would "
                 "listen on 8000)")


@pytest.mark.skipif(shutil.which("setpriv") is None and os.geteuid() == 0,
                    reason="root can bind any port; needs setpriv to drop that right")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_permission_denied_on_a_low_port_is_one_line(workers: str) -> None:
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 80:
        pytest.skip("this machine lets anyone bind port 80")
    # Root without CAP_NET_BIND_SERVICE is refused a low port as any user is.
    drop = ("setpriv", "--bounding-set", "-net_bind_service") if os.geteuid() == 0 else ()
    refused_with(run_py("--workers", workers, "--bind", "127.0.0.1:80", prefix=drop),
                 "quart_app: cannot listen on 127.0.0.1:80: [Errno 13] Permission denied")


def test_hypercorn_settings_come_from_the_environment(tmp_path: Path) -> None:
    env = {"QUART_HYPERCORN__WORKERS": "2"}
    with ServerProcess("--app", SLOW_APP, env=env, bind_in_env=True,
                       log_dir=tmp_path) as server:
        assert len(worker_answers(server, 2)) == 2  # the bind and the workers came from env
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("QUART_HYPERCORN__WORKERS", "0",
         "bad setting QUART_HYPERCORN__WORKERS = 0: expected a whole number >= 1"),
        ("QUART_HYPERCORN__BIND", "127.0.0.1",
         "bad setting QUART_HYPERCORN__BIND = '127.0.0.1': expected HOST:PORT, [IPv6]:PORT, "
         "unix:PATH or fd://N: the port is missing (hypercorn would listen on 8000)"),
        ("QUART_HYPERCORN__KEEP_ALIVE_TIMEOUT", '"long"',
         "bad setting QUART_HYPERCORN__KEEP_ALIVE_TIMEOUT = 'long': expected a number of "
         "seconds > 0"),
        ("QUART_HYPERCORN__THREADS", "4",
         "bad setting QUART_HYPERCORN__THREADS = 4: expected one of access_log_format, "
         "accesslog, backlog, bind, dogstatsd_tags, errorlog, graceful_timeout, "
         "granian_backpressure, granian_runtime_threads, granian_task_impl, "
         "h11_max_incomplete_size, keep_alive_timeout, read_timeout, server, statsd_host, "
         "statsd_prefix, worker_class, workers"),
        ("QUART_HYPERCORN", "2",
         "bad setting QUART_HYPERCORN = 2: expected a table: set its keys, as in "
         "QUART_HYPERCORN__WORKERS=2"),
        ("QUART_HYPERCORN_WORKERS", "2",
         "bad setting QUART_HYPERCORN_WORKERS = '<hidden>': expected a known setting "
         "(did you mean QUART_HYPERCORN__WORKERS?)"),
        ("QUART_DATABSE_URL", "mysql://root:pw@h/db",
         "bad setting QUART_DATABSE_URL = '<hidden>': expected a known setting "
         "(did you mean QUART_DATABASE_URL?)"),
    ],
)
def test_a_bad_environment_setting_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    name: str, value: str, line: str
) -> None:
    monkeypatch.setenv(name, value)
    main_refuses(capsys, [], f"quart_app: {line}")


def test_the_default_keep_alive_outlasts_common_clients_pools() -> None:
    """httpx drops an idle pooled connection after 5 s; a server that closes at the same
    moment races the client's next request, which then fails with a reset."""
    assert run.hypercorn_settings()["keep_alive_timeout"] > httpx.Limits().keepalive_expiry
    assert run.DEFAULTS["keep_alive_timeout"] > httpx.Limits().keepalive_expiry


def test_an_idle_connection_outlives_a_clients_pool_expiry(tmp_path: Path) -> None:
    """A client reuses a pooled connection up to its expiry (httpx: 5 s); the server must
    still be listening on it then, or that request meets a closed socket."""
    env = {"QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'idle.sqlite3'}"}
    with ServerProcess(env=env, log_dir=tmp_path) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        reader = connection.makefile("rb")
        for info_id in (1, 2):
            body = b'{"id": %d, "name": "idle", "money": "1.00"}' % info_id
            connection.sendall(b"POST /api/info HTTP/1.1\r\nHost: test\r\nContent-Type: "
                               b"application/json\r\nContent-Length: %d\r\n\r\n%s"
                               % (len(body), body))
            assert reader.readline().split()[1] == b"201"  # the second: not a closed socket
            headers = {}
            while (line := reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            reader.read(int(headers["content-length"]))
            if info_id == 1:
                # Idle as long as httpx keeps a pooled connection, and a little more.
                time.sleep(httpx.Limits().keepalive_expiry + 0.5)
        assert server.stop() == 0


def test_hypercorn_statsd_settings_reach_its_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from quart_app.cli import build_config, parse_args, serving_settings

    monkeypatch.setenv("QUART_HYPERCORN__STATSD_HOST", '"127.0.0.1:8125"')
    monkeypatch.setenv("QUART_HYPERCORN__STATSD_PREFIX", '"quart_app"')
    config = build_config(serving_settings(parse_args([])), "quart_app:create_app()")
    assert (config.statsd_host, config.statsd_prefix) == ("127.0.0.1:8125", "quart_app")
