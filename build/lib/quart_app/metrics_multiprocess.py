"""Metrics summed over every worker of one `run.py`: prometheus-client's multiprocess mode.

Each worker writes its counts to files in `PROMETHEUS_MULTIPROC_DIR`, and a scrape, whichever
worker answers it, sums them all. prometheus-client reads that variable when it is first
imported, so `run.py` sets it before spawning workers (`prepare_directory`), and the
directory must start empty: counts left by an earlier run would be added to this one's.
Gauges of a worker that has exited are dropped (`worker_exited`); its counters stay in the
sums, as Prometheus expects of counters.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


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


def exposition() -> bytes:
    """The Prometheus text of every worker's metrics (or this process's, with one worker)."""
    if not os.environ.get(ENV_VAR):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
