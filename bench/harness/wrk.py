"""Driving wrk: its command line for a scenario, and the BENCHJSON line its scripts print."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from .places import WRK_DIR
from .scenarios import Scenario


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk not found: run bench/setup.sh (apt-get install -y wrk)")
    return wrk


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    status_errors: int  # wrk's count of status > 399
    threads: list[dict[str, Any]]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non2xx(self) -> int:
        return sum(int(t["non2xx"]) for t in self.threads)

    @property
    def errors(self) -> int:
        # Scripts with a response() count every non-2xx themselves; plain reads rely on wrk.
        return self.socket_errors + (self.non2xx if self.threads else self.status_errors)

    def acked_ranges(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for t in self.threads:
            r = [int(x) for x in t["ranges"]]
            out.extend(zip(r[0::2], r[1::2], strict=True))
        return out


def run_wrk(
    scenario: Scenario, port: int, seconds: int, timeout_s: int, base: int, stride: int
) -> WrkResult:
    argv = [
        "wrk",
        "-t",
        str(scenario.threads),
        "-c",
        str(scenario.connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{timeout_s}s",
        "-s",
        str(WRK_DIR / scenario.script),
        f"http://127.0.0.1:{port}{scenario.path}",
    ]
    if scenario.inserts:
        argv += ["--", f"base={base}", f"stride={stride}", f"rows={scenario.rows_per_request}"]
    env = {**os.environ, "BENCH_WRK_DIR": str(WRK_DIR)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    errors = data["errors"]
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["latency_us"]["p50"] / 1000,
        p99_ms=data["latency_us"]["p99"] / 1000,
        socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
        status_errors=int(errors["status"]),
        threads=data["threads"],
    )
