"""The Flask peer's own venv, made or refreshed from bench/flask_original/requirements.txt."""

from __future__ import annotations

import hashlib
import subprocess

from .places import BENCH_VENV, FLASK_DIR


def ensure_bench_venv() -> None:
    req = FLASK_DIR / "requirements.txt"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    stamp = BENCH_VENV / ".requirements.sha256"
    if (BENCH_VENV / "bin" / "gunicorn").exists() and stamp.exists():
        if stamp.read_text().strip() == digest:
            return
    print(f"setting up the Flask peer's venv at {BENCH_VENV} ...", flush=True)
    if not (BENCH_VENV / "bin" / "python").exists():
        subprocess.run(["python3", "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "-q", "-r", str(req)], check=True)
    stamp.write_text(digest + "\n")
