#!/usr/bin/env bash
# One-time setup for the benchmark: wrk from Debian and the Flask peer's venv.
# (bench/run.py also creates/refreshes the venv by itself when requirements.txt changes.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${BENCH_VENV:-$here/.flask-venv}"
if ! command -v wrk >/dev/null; then
    apt-get update
    apt-get install -y wrk
fi
if [ ! -x "$venv/bin/gunicorn" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q -r "$here/flask_original/requirements.txt"
sha256sum "$here/flask_original/requirements.txt" | cut -d' ' -f1 > "$venv/.requirements.sha256"
echo "ready: wrk $(command -v wrk), Flask peer venv $venv"
