"""Benchmark quart_app against the seed's Flask app, bare Quart and each server's ceiling.

One command runs every scenario: for each run it starts each peer server, waits for it to
answer, primes it, drives it with wrk (1 s warm-up, then the measured run) while sampling the
RSS of its worker processes, stops it, and checks what the load tool saw (every acknowledged
insert is in the table; read-after-own-write; notifications delivered). Peers alternate
(A B C A B C ...), each scenario gets --runs runs per peer, and the medians go into one
markdown table, printed and written to bench/results/latest.md.

    .venv/bin/python bench/run.py            # everything, 5 s per run
    .venv/bin/python bench/run.py --quick    # 2 s per run
    .venv/bin/python bench/run.py --scenarios get-mem,insert-url --peers flask,ceiling
    .venv/bin/python bench/run.py --scenarios get-mem --peers quart_app,quart_app@asyncio
    .venv/bin/python bench/run.py --list

The harness is the package bench/harness/ (one module per job); this file is its command.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo: bench.harness

from bench.harness.main import main

if __name__ == "__main__":
    raise SystemExit(main())
