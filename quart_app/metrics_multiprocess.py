"""Metrics summed over every worker of one `run.py`: prometheus-client's multiprocess mode.

Each worker writes its counts to files in `PROMETHEUS_MULTIPROC_DIR`, and a scrape, whichever
worker answers it, sums them all. prometheus-client reads that variable when it is first
imported, so `run.py` sets it before spawning workers (`prepare_directory`), and the
directory must start empty: counts left by an earlier run would be added to this one's.
Gauges of a worker that has exited are dropped; its counters stay in the sums, as
Prometheus expects of counters. run.py's hypercorn workers are its own children, and it drops
their gauges when each exits (`worker_exited`); granian's are granian's, so each scrape
(and run.py, once granian has stopped) drops the gauges of every process that is gone
(`drop_exited_processes`), a worker killed with SIGKILL included.

Workers write their files while another worker reads them: a file a worker has only just
created is empty for an instant (nothing counted yet, so it is left out), and a gauge file
another worker's scrape drops can vanish between the listing and the reading (read again).
A scrape that still cannot read every file raises `MetricsUnreadable` (answered 503): a sum
missing a worker's counters would look to Prometheus like a counter reset.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from .errors import error_text

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
# prometheus-client's files of gauges summed over live processes only: gauge_<mode>_<pid>.db
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")
#: Reads of every worker's files a scrape makes before it gives up (see the module's docstring).
READ_ATTEMPTS = 3
_READ_PAUSE = 0.01
#: What reading a file that changes under the reader raises in prometheus-client.
_UNSETTLED = (FileNotFoundError, struct.error, RuntimeError)


class MetricsUnreadable(Exception):
    """Some worker's metrics file could not be read, after `READ_ATTEMPTS` tries."""


class _WrittenFiles(MultiProcessCollector):
    """prometheus-client's collector, leaving out files with nothing written in them yet."""

    def collect(self) -> Iterable[Metric]:
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            with contextlib.suppress(FileNotFoundError):
                if os.path.getsize(path) >= 8:  # the header a worker writes when it opens one
                    files.append(path)
        return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call,no-any-return]


def prepare_directory() -> Path:
    """Empty the directory named by `PROMETHEUS_MULTIPROC_DIR`, or make one for this run."""
    named = os.environ.get(ENV_VAR)
    if named:
        directory = Path(named)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return directory
    directory = Path(tempfile.mkdtemp(prefix="quart_app-metrics-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ[ENV_VAR] = str(directory)
    return directory


def worker_exited(pid: int | None) -> None:
    """Drop the gauges of a worker that has exited (its counters stay counted)."""
    if pid is not None and os.environ.get(ENV_VAR):
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


def drop_exited_processes() -> None:
    """Drop the gauges of every process that wrote some and has exited since."""
    named = os.environ.get(ENV_VAR)
    if not named:
        return
    pids = {int(match[1]) for path in Path(named).glob("gauge_live*.db")
            if (match := _LIVE_GAUGE_FILE.fullmatch(path.name))}
    for pid in pids:
        if not _alive(pid):
            # Two workers answering scrapes at once may both drop it.
            with contextlib.suppress(FileNotFoundError):
                mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, the pid is only looked up
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def exposition() -> bytes:
    """The Prometheus text of every worker's metrics (or this process's, with one worker)."""
    if not os.environ.get(ENV_VAR):
        return generate_latest(REGISTRY)
    drop_exited_processes()
    registry = CollectorRegistry()
    _WrittenFiles(registry)  # type: ignore[no-untyped-call]
    for attempt in range(READ_ATTEMPTS):
        try:
            return generate_latest(registry)
        except _UNSETTLED as error:
            if attempt == READ_ATTEMPTS - 1:
                raise MetricsUnreadable(error_text(error)) from error
            time.sleep(_READ_PAUSE)
    raise AssertionError("unreachable")
