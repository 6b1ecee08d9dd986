"""What counting a receiver run costs: a signal sent to one no-op receiver, METRICS on and off.

Issue 15 asks that counting for `/metrics` cost the hot path little. Every receiver run
through quart_app's dispatch is counted once (`quart_app_signal_receivers_total`); this
times `dispatch.send` of a signal with one inline receiver (connected with `receiver`) and,
separately, one plain blinker receiver, on an app with `METRICS = true` and one with
`METRICS = false`, in this process's memory and in prometheus-client's multiprocess mode
(files, as under `run.py --workers N`). The difference per send is the cost of one count.

    python bench/receiver_counting.py [--sends 50000] [--repeats 7]

Each figure is the best of `--repeats` rounds (the least disturbed by the rest of the machine);
"one count alone" times `ReceiverRuns.count`, what a receiver run adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MODE_ENV = "BENCH_RECEIVER_COUNTING_CHILD"


async def time_sends(sends: int, repeats: int) -> dict[str, float]:
    """Nanoseconds per call, best of `repeats`: sends for each (receiver kind, METRICS)
    pair, rounds interleaved so that a busy moment of the machine hits both alike, and one
    count alone."""
    sys.path.insert(0, str(REPO))
    from quart import Quart

    from quart_app.dispatch import GuardedNamespace, receiver, send
    from quart_app.metrics import OK, receiver_runs

    namespace = GuardedNamespace()

    async def no_op(sender: Quart, **extra: Any) -> None:
        return None

    cases = {}
    for counting in (True, False):
        app = Quart(__name__)
        app.config["METRICS"] = counting
        inline = namespace.signal(f"bench-inline-{counting}")
        plain = namespace.signal(f"bench-plain-{counting}")
        receiver(inline, app, dispatch_uid="bench.no_op")(no_op)
        plain.connect(no_op, sender=app, weak=False)
        state = "on" if counting else "off"
        cases[f"inline METRICS={state}"] = (inline, app)
        cases[f"plain METRICS={state}"] = (plain, app)
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for name, (signal, app) in cases.items():
            started = time.perf_counter_ns()
            for _ in range(sends):
                await send(signal, app)
            best[name] = min(best[name], (time.perf_counter_ns() - started) / sends)
    runs = receiver_runs("bench-count", "bench.no_op")
    count = timeit.Timer(lambda: runs.count(OK))
    best["count"] = min(count.repeat(repeats, sends)) / sends * 1e9
    return best


def child(sends: int, repeats: int) -> None:
    print(json.dumps(asyncio.run(time_sends(sends, repeats))))


def measure(sends: int, repeats: int, multiprocess: bool) -> dict[str, float]:
    """One mode, in a fresh interpreter: prometheus-client picks its mode at import."""
    env = {**os.environ, MODE_ENV: "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory(prefix="receiver-counting-") as directory:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        out = subprocess.run(
            [sys.executable, __file__, "--sends", str(sends), "--repeats", str(repeats)],
            env=env, capture_output=True, text=True, check=True,
        )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if os.environ.get(MODE_ENV):
        child(args.sends, args.repeats)
        return
    print(f"ns per call, best of {args.repeats} rounds of {args.sends:,}")
    print("| mode | one count alone | send, inline receiver: METRICS on / off | "
          "send, plain blinker receiver: METRICS on / off |")
    print("|---|---:|---:|---:|")
    for multiprocess in (False, True):
        figures = measure(args.sends, args.repeats, multiprocess)
        mode = "multiprocess (files)" if multiprocess else "one process (memory)"
        cells = [f"{figures['count']:,.0f}"]
        for kind in ("inline", "plain"):
            on, off = figures[f"{kind} METRICS=on"], figures[f"{kind} METRICS=off"]
            cells.append(f"{on:,.0f} / {off:,.0f} ({on - off:+,.0f})")
        print(f"| {mode} | " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
