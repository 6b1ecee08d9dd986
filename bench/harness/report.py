"""The report: medians per scenario and peer, ratios to the Flask original, the checks."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from .data import mysql
from .measure import RunRecord
from .peers import PEERS, Settings, peer_of, quart_env
from .places import BENCH_VENV, QUART_PYTHON, REDIS_URL, REPO
from .scenarios import Scenario


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(x: float, digits: int = 0) -> str:
    if x != x:  # nan
        return "—"
    return f"{x:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    if a != a or b != b or b == 0:
        return "—"
    return f"{a / b:.2f}"


def version_of(python: Path, dist: str) -> str:
    try:
        out = subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def machine_line() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk_version = "?"
    with contextlib.suppress(OSError, IndexError):
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        wrk_version = (out.stdout + out.stderr).split()[1]
    mariadb = "?"
    with contextlib.suppress(Exception):
        conn = mysql(None)
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            mariadb = str(cur.fetchone()[0])
        conn.close()
    redis_version = "?"
    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(REDIS_URL)
        redis_version = str(client.info("server")["redis_version"])
        client.close()
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; quart_app side: Quart "
        f"{version_of(QUART_PYTHON, 'quart')}, Hypercorn {version_of(QUART_PYTHON, 'hypercorn')}; "
        f"Flask side: Flask {version_of(BENCH_VENV / 'bin' / 'python', 'flask')}, "
        f"Flask-Caching {version_of(BENCH_VENV / 'bin' / 'python', 'flask-caching')}, "
        f"gunicorn {version_of(BENCH_VENV / 'bin' / 'python', 'gunicorn')}; "
        f"MariaDB {mariadb}, Redis {redis_version}, wrk {wrk_version}"
    )


def settings_drift() -> str:
    """Where run.py's effective hypercorn settings differ from the ceiling's, if anywhere."""
    from bench.ceiling import HYPERCORN_SETTINGS

    code = "import json, run; print(json.dumps(run.hypercorn_settings(), default=str))"
    try:
        out = subprocess.run(
            [str(QUART_PYTHON), "-c", code],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **quart_env(Settings())},
        )
        theirs: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return "could not read run.py's hypercorn settings (run.hypercorn_settings())"
    diffs = []
    for key, ours in sorted(HYPERCORN_SETTINGS.items()):
        if key in theirs and theirs[key] != ours:
            diffs.append(f"{key}: run.py {theirs[key]!r}, ceiling {ours!r}")
    for key in sorted(set(theirs) - set(HYPERCORN_SETTINGS) - {"bind", "workers", "server"}):
        diffs.append(f"{key}: run.py {theirs[key]!r}, ceiling hypercorn's default")
    return "; ".join(diffs)


def checks_cell(scenario: Scenario, by_peer: dict[str, list[RunRecord]]) -> str:
    parts = []
    for name, recs in by_peer.items():
        if not recs:
            continue
        bits = []
        if scenario.inserts:
            bits.append(
                f"acked {sum(r.acked for r in recs):,}, missing "
                f"{sum(r.acked_missing for r in recs)}"
            )
        if any(r.checked for r in recs):
            bits.append(f"stale {sum(r.stale for r in recs)}/{sum(r.checked for r in recs):,}")
        if scenario.settings.slow_notify_ms:
            delivered = [r.notify_delivered for r in recs]
            if min(delivered) < 0:
                bits.append("notifications: not countable")
            else:
                bits.append(f"notified {sum(delivered):,}/{sum(r.notify_expected for r in recs):,}")
        if bits:
            parts.append(f"{name}: " + ", ".join(bits))
    return "; ".join(parts) or ""


def bulk_comparison(records: list[RunRecord]) -> str:
    """Bulk rows/s against the Flask original's one-row-per-request inserts (scenario 4)."""
    flask = med([r.rps for r in records
                 if r.scenario == "insert-url" and r.peer == "flask" and not r.error])
    parts = []
    for peer in ("quart_app", "granian"):
        rows = med([r.rps for r in records
                    if r.scenario == "bulk" and r.peer == peer and not r.error])
        if rows == rows and flask == flask:  # both measured (NaN otherwise)
            parts.append(f"{peer} {fmt(rows)} rows/s, {ratio(rows, flask)}x")
    if not parts:
        return ""
    return (f"Bulk load against the Flask original's seed-URL inserts ({fmt(flask)} rows/s, one "
            "row per request, all it can do): " + "; ".join(parts) + ".")


def report(
    scenarios: list[Scenario],
    records: list[RunRecord],
    skipped: dict[str, str],
    scenario_skips: list[str],
    args: argparse.Namespace,
    started: dt.datetime,
) -> str:
    bases = list(PEERS)
    order = sorted(dict.fromkeys(r.peer for r in records),
                   key=lambda name: (bases.index(name.partition("@")[0]), name))
    short = {name: peer_of(name).short for name in order}
    compared = [name for name in order if name != "flask"]
    each = " / ".join(short[name] for name in order)
    lines = [
        f"Run {started:%Y-%m-%d %H:%M} UTC, {args.runs} runs per peer, {args.duration} s each "
        f"after {args.warmup} s warm-up, peers alternating; medians.",
        "",
        f"Machine: {machine_line()}.",
        "",
        "Peers: " + ", ".join(f"{short[name]} = {name}" for name in order) + ".",
        "",
        "| scenario | "
        + " | ".join(f"req/s {short[name]}" for name in order)
        + "".join(f" | {short[name]}/F" for name in compared if "flask" in order)
        + f" | p50 ms {each} | p99 ms {each} | errors {each} | worker RSS MiB {each} | checks |",
        "|---|" + "---:|" * (len(order) + len(compared) * ("flask" in order)) + "---|" * 5,
    ]
    for sc in scenarios:
        by_peer: dict[str, list[RunRecord]] = {
            p: [r for r in records if r.scenario == sc.key and r.peer == p and not r.error]
            for p in order
        }
        rps = {p: med([r.rps for r in rs]) for p, rs in by_peer.items()}

        def per_peer(getter: Callable[[list[RunRecord]], str],
                     by: dict[str, list[RunRecord]]) -> str:
            return " / ".join(getter(by[p]) if by[p] else "—" for p in order)

        ratios = ([ratio(rps[name], rps["flask"]) if by_peer[name] else "—"
                   for name in compared] if "flask" in order else [])
        lines.append(
            "| "
            + " | ".join(
                [
                    sc.title,
                    *(fmt(rps[name]) if by_peer[name] else "—" for name in order),
                    *ratios,
                    per_peer(lambda rs: fmt(med([r.p50_ms for r in rs]), 1), by_peer),
                    per_peer(lambda rs: fmt(med([r.p99_ms for r in rs]), 1), by_peer),
                    per_peer(lambda rs: str(sum(r.errors for r in rs)), by_peer),
                    per_peer(lambda rs: fmt(med([r.rss_peak_mib for r in rs]), 0), by_peer),
                    checks_cell(sc, by_peer),
                ]
            )
            + " |"
        )
    bulk_line = bulk_comparison(records)
    if bulk_line:
        lines += ["", bulk_line]
    lines.append("")
    lines.append(
        "Errors are summed over the runs (socket errors + non-2xx). Worker RSS is the peak of "
        "the summed VmRSS of the server's worker processes, sampled every 0.2 s. The ceiling "
        'only runs the read scenarios. "missing" counts inserts wrk saw acknowledged that '
        'are not in the table; "stale" counts list reads right after an own insert that '
        "did not contain it."
    )
    drift = settings_drift() if any(r.peer == "ceiling" for r in records) else ""
    if drift:
        lines.append("")
        lines.append(f"Note: quart_app's hypercorn settings differ from the ceiling's: {drift}.")
    failures = [r for r in records if r.error]
    if skipped or failures or scenario_skips:
        lines.append("")
        for name, why in skipped.items():
            lines.append(f"- {name} skipped: {why}")
        for line in scenario_skips:
            lines.append(f"- skipped {line}")
        for r in failures:
            lines.append(f"- {r.scenario} / {r.peer} run {r.run} failed: {r.error}")
    return "\n".join(lines) + "\n"
