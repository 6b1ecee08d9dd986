"""bench/run.py's command line: which scenarios and peers, the alternating runs, the exit status.

For each scenario, for run 1..N, each peer in turn (A B C, A B C, ...): one measured run
(measure.run_once); then one report of the medians (report.report), printed and written to
--out, plus scenario 7's in-process half (scaling.scaling_report).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from .data import prepare_database
from .flask_venv import ensure_bench_venv
from .measure import ProbeFailed, RunRecord, run_once
from .peers import DEFAULT_PEERS, PEERS, VARIANTS, UnknownPeer, peer_of
from .places import RESULTS
from .report import report
from .scaling import scaling_report
from .scenarios import SCENARIOS
from .servers import PeerNotReady
from .wrk import require_wrk


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="quart_app vs Flask original vs ceiling")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per peer and scenario")
    parser.add_argument("--quick", action="store_true", help="2 s runs")
    parser.add_argument("--timeout", type=int, default=5, help="wrk request timeout, s")
    parser.add_argument("--scenarios", default="", help="comma-separated keys (default all)")
    parser.add_argument("--peers", default=DEFAULT_PEERS,
                        help="comma-separated peers, each NAME or NAME@VARIANT (see --list)")
    parser.add_argument("--keep-data", action="store_true", help="do not empty `info` first")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.md")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    all_scenarios = SCENARIOS
    if args.list:
        for sc in all_scenarios:
            print(f"{sc.key:12} {sc.description}")
        print("\npeers: " + ", ".join(PEERS))
        print("variants (PEER@VARIANT): " + ", ".join(
            f"{name} ({' '.join(f'{k}={v}' for k, v in env.items())})"
            for name, env in VARIANTS.items()))
        return 0
    wanted = [k for k in args.scenarios.split(",") if k]
    scenarios = [s for s in all_scenarios if not wanted or s.key in wanted]
    unknown = set(wanted) - {s.key for s in all_scenarios}
    if unknown:
        sys.exit(f"unknown scenarios: {', '.join(sorted(unknown))} (see --list)")
    try:
        peers = [peer_of(p) for p in args.peers.split(",") if p]
    except UnknownPeer as error:
        sys.exit(str(error))

    require_wrk()
    if any(p.role == "flask" for p in peers):
        ensure_bench_venv()
    prepare_database(args.keep_data)
    RESULTS.mkdir(exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    records: list[RunRecord] = []
    skipped: dict[str, str] = {}
    scenario_skips: list[str] = []
    raw = (RESULTS / "latest.raw").open("w")

    for sc in scenarios:
        active = [p for p in peers if p.role != "ceiling" or sc.with_ceiling]
        print(f"== {sc.key}: {sc.description}", flush=True)
        not_here: set[str] = set()
        for run in range(1, args.runs + 1):
            for peer in active:  # A B C, A B C, ...
                if peer.name in skipped or peer.name in not_here:
                    continue
                t0 = time.monotonic()
                try:
                    rec = run_once(sc, peer, run, args)
                except PeerNotReady as exc:
                    skipped[peer.name] = f"readiness check GET {peer.ready_path} failed: {exc}"
                    print(f"  {peer.name}: SKIPPED, {skipped[peer.name]}", flush=True)
                    continue
                except ProbeFailed as exc:
                    not_here.add(peer.name)
                    why = f"probe failed, {exc}"
                    print(f"  {peer.name}: SKIPPED in {sc.key}, {why}", flush=True)
                    scenario_skips.append(f"{sc.key} / {peer.name}: {why}")
                    continue
                except Exception as exc:
                    rec = RunRecord(sc.key, peer.name, run, error=f"{type(exc).__name__}: {exc}")
                records.append(rec)
                raw.write(json.dumps(rec.__dict__) + "\n")
                raw.flush()
                print(
                    f"  run {run} {peer.name:9} {rec.rps:9,.0f} req/s  p50 {rec.p50_ms:6.1f} ms"
                    f"  p99 {rec.p99_ms:7.1f} ms  err {rec.errors}  rss {rec.rss_peak_mib:5.0f} MiB"
                    + (f"  acked {rec.acked} missing {rec.acked_missing}" if sc.inserts else "")
                    + (f"  stale {rec.stale}/{rec.checked}" if rec.checked else "")
                    + (
                        f"  notified {rec.notify_delivered}/{rec.notify_expected}"
                        if rec.notify_expected >= 0
                        else ""
                    )
                    + (f"  ERROR {rec.error}" if rec.error else "")
                    + f"  ({time.monotonic() - t0:.0f} s)",
                    flush=True,
                )
    raw.close()
    text = report(scenarios, records, skipped, scenario_skips, args, started)
    text += "\n" + scaling_report()
    args.out.write_text(text)
    print()
    print(text)
    bad = [r for r in records if r.acked_missing]
    if bad:
        print("FAIL: acknowledged inserts missing from the table:", file=sys.stderr)
        for r in bad:
            print(f"  {r.scenario} {r.peer} run {r.run}: {r.acked_missing}", file=sys.stderr)
        return 1
    return 0

