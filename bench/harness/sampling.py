"""The memory of a server's workers while wrk runs: the peak of their summed VmRSS."""

from __future__ import annotations

import threading
from pathlib import Path

from .servers import worker_pids


def status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak of the summed VmRSS of the worker processes, sampled every 0.2 s."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.2)

    def sample(self) -> None:
        total = sum(status_kib(p, "VmRSS") for p in worker_pids(self.root))
        self.peak_kib = max(self.peak_kib, total)

    def hwm_kib(self) -> int:
        return sum(status_kib(p, "VmHWM") for p in worker_pids(self.root))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
