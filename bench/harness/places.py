"""Where things are: bench/'s files, the Pythons that run the peers, and the shared services."""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
LOGS = RESULTS / "logs"
WRK_DIR = BENCH / "wrk"
FLASK_DIR = BENCH / "flask_original"

QUART_PYTHON = Path(os.environ.get("BENCH_QUART_PYTHON", sys.executable))
BENCH_VENV = Path(os.environ.get("BENCH_VENV", str(BENCH / ".flask-venv")))

MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
DB_NAME = os.environ.get("BENCH_DB_NAME", "quart_app_bench")
# Database 14: the tests use 15 and may be running at the same time.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
