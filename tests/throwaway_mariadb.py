"""A private mariadbd the test owns, so it can be killed and restarted at will.

Never the shared server on 3306: fault tests must not disturb anyone else's data. The data
directory is initialised once per test session and copied for each test (a copy takes
milliseconds, `mariadb-install-db` about two seconds).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from .services import missing_service
from .support import free_port

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "mariadb-install-db"
SHARED_PORT = 3306

# Small buffers and redo log: the server starts in a fraction of a second.
_SERVER_OPTIONS = [
    "--innodb-log-file-size=4M",
    "--innodb-buffer-pool-size=16M",
    "--skip-name-resolve",
]


class ThrowawayMariaDB:
    """One mariadbd on a free port of 127.0.0.1, root with an empty password."""

    def __init__(self, datadir: Path, rundir: Path) -> None:
        self.datadir = datadir
        # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
        self.rundir = rundir
        self.port = free_port()
        if self.port == SHARED_PORT:
            raise RuntimeError("the throwaway MariaDB must never use the shared port 3306")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/quart_app_test"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start the server (again, on the same port) and wait until it answers."""
        if self.running:
            return
        self.process = subprocess.Popen(
            [
                MARIADBD, "--no-defaults", f"--datadir={self.datadir}",
                f"--port={self.port}", "--bind-address=127.0.0.1",
                f"--socket={self.rundir / 'sock'}", f"--pid-file={self.rundir / 'pid'}",
                f"--log-error={self.rundir / 'error.log'}", "--skip-log-bin", "--user=root",
                *_SERVER_OPTIONS,
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                pymysql.connect(
                    host="127.0.0.1", port=self.port, user="root", connect_timeout=1
                ).close()
                return
            except pymysql.err.MySQLError:
                time.sleep(0.05)
        log = (self.rundir / "error.log").read_text(errors="replace")[-2000:]
        self.kill()
        raise RuntimeError(f"throwaway mariadbd did not start on port {self.port}:\n{log}")

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-whatever, as in a crash."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        """SIGTERM: a clean shutdown."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None


def _require_binaries() -> None:
    if shutil.which(INSTALL_DB) is None or not Path(MARIADBD).exists():
        missing_service(f"{MARIADBD} or {INSTALL_DB} is not installed")


@pytest.fixture(scope="session")
def mariadb_datadir_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised, never started data directory, made once per session."""
    _require_binaries()
    datadir = tmp_path_factory.mktemp("mariadb-template") / "data"
    subprocess.run(
        [
            INSTALL_DB, "--no-defaults", f"--datadir={datadir}", "--user=root",
            "--auth-root-authentication-method=normal", "--skip-test-db", *_SERVER_OPTIONS,
        ],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
    )
    return datadir


@pytest.fixture
def throwaway_mariadb(tmp_path: Path, mariadb_datadir_template: Path) -> Iterator[ThrowawayMariaDB]:
    """A private server, NOT started: tests start, kill and restart it themselves."""
    datadir = tmp_path / "mariadb-data"
    shutil.copytree(mariadb_datadir_template, datadir)
    rundir = Path(tempfile.mkdtemp(prefix="mdb-"))
    server = ThrowawayMariaDB(datadir, rundir)
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(rundir, ignore_errors=True)
