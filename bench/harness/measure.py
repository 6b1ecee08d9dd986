"""One run of one peer in one scenario: start, prime, probe, warm up, measure, stop, check."""

from __future__ import annotations

import argparse
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .data import allocate_ids, count_rows, flush_redis
from .peers import Peer
from .places import LOGS
from .sampling import RssSampler
from .scenarios import Scenario
from .servers import Server, http_get, http_request, running, server_workers
from .wrk import WrkResult, run_wrk

PRIME_ROUNDS = 10


class ProbeFailed(Exception):
    pass


@dataclass
class RunRecord:
    scenario: str
    peer: str
    run: int
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    rss_peak_mib: float = 0.0
    rss_hwm_mib: float = 0.0
    acked: int = 0
    acked_missing: int = 0  # acknowledged inserts not in the table: must be 0
    rows_unacked: int = 0  # rows written whose answer wrk never saw (cut at the deadline)
    checked: int = 0
    stale: int = 0
    notify_expected: int = -1
    notify_delivered: int = -1
    error: str = ""
    notes: list[str] = field(default_factory=list)


def prime(server: Server) -> None:
    """GET / until every worker has cached 'name': until 32 fresh GET /get all answer 200.

    Eight connections at once, in rounds: on granian's one shared socket a single free
    worker can take every connection of a client that asks one at a time.
    """
    bad = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(PRIME_ROUNDS):
            list(pool.map(lambda _: http_get(server.port, "/"),
                          range(16 * server_workers(server))))
            statuses = list(pool.map(lambda _: http_get(server.port, "/get")[0], range(32)))
            bad = sum(status != 200 for status in statuses)
            if not bad:
                return
    print(f"  {server.peer.name}: {bad}/32 GET /get after priming were not 200")


def run_probes(server: Server, scenario: Scenario) -> None:
    """Check that the routes the scenario drives exist and do their job on this peer."""
    if not server.peer.probe:
        return
    for probe in scenario.probes:
        id_ = allocate_ids(1)
        path = probe.path.replace("{id}", str(id_))
        body = probe.body.replace("{id}", str(id_)) if probe.body else None
        what = f"{probe.method} {path}"
        try:
            status, data = http_request(server.port, probe.method, path, body)
        except OSError as exc:
            raise ProbeFailed(f"{what}: {exc}") from exc
        if status not in probe.status:
            raise ProbeFailed(f"{what} answered {status}: {data[:120]!r}")
        if probe.contains and probe.contains.encode() not in data:
            raise ProbeFailed(f"{what}: body lacks {probe.contains!r}: {data[:120]!r}")
        if probe.inserts and count_rows([(id_, id_)]) != [1]:
            raise ProbeFailed(f"{what} answered {status} but wrote no row {id_}")
    if scenario.settings.slow_notify_ms:
        pattern = server.peer.notify_log
        if pattern is None:
            raise ProbeFailed("it sends no notifications")
        deadline = time.monotonic() + 3 + scenario.settings.slow_notify_ms / 1000
        while time.monotonic() < deadline:
            if pattern.search(server.log_path.read_text(errors="replace")):
                return
            time.sleep(0.1)
        raise ProbeFailed(
            f"no {pattern.pattern!r} in its log after a probe insert: "
            "slow notification receiver not switched on?"
        )


def notifications(log_path: Path, pattern: re.Pattern[str] | None) -> int:
    if pattern is None:
        return 0
    return len(pattern.findall(log_path.read_text(errors="replace")))


def settle(
    log_path: Path, pattern: re.Pattern[str], ranges: list[tuple[int, int]], before: int
) -> None:
    """Before stopping the server, let the notifications of the last inserts go out.

    Waits until the delivered count reaches the rows written, or stops growing for 2 s
    (at most 30 s). A server's graceful stop need not wait for them: this is not that test.
    """
    deadline = time.monotonic() + 30
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        delivered = notifications(log_path, pattern) - before
        if delivered >= sum(count_rows(ranges)):
            return
        if delivered != last:
            last, still_since = delivered, time.monotonic()
        elif time.monotonic() - still_since > 2:
            return
        time.sleep(0.2)


def id_stride(seconds: int) -> int:
    # Room for ~5,000 inserts/s per thread, far above anything 2 cores do.
    return 10_000 + 5_000 * seconds


def run_once(scenario: Scenario, peer: Peer, run: int, args: argparse.Namespace) -> RunRecord:
    rec = RunRecord(scenario.key, peer.name, run)
    settings = scenario.settings
    flush_redis()
    log_path = LOGS / f"{scenario.key}.{peer.name}.{run}.log"
    stride = id_stride(args.duration) * scenario.rows_per_request
    insert_ranges: list[tuple[int, int]] = []  # every id range wrk could have written
    acked: list[tuple[int, int]] = []

    def wrk(port: int, seconds: int) -> WrkResult:
        base = 0
        if scenario.inserts:
            base = allocate_ids(scenario.threads * stride)
            insert_ranges.append((base, base + scenario.threads * stride - 1))
        res = run_wrk(scenario, port, seconds, args.timeout, base, stride)
        acked.extend(res.acked_ranges())
        return res

    with running(peer, settings, log_path) as server:
        if scenario.prime_get:
            prime(server)
        run_probes(server, scenario)
        # Notifications of the probe inserts are not the run's.
        notified_before = notifications(log_path, peer.notify_log)
        if args.warmup:
            wrk(server.port, args.warmup)
        with RssSampler(server.proc.pid) as rss:
            res = wrk(server.port, args.duration)
        rec.rss_hwm_mib = rss.hwm_kib() / 1024
        rec.rss_peak_mib = rss.peak_kib / 1024
        if settings.slow_notify_ms and peer.notify_log is not None:
            settle(log_path, peer.notify_log, insert_ranges, notified_before)
    # The server is stopped (gracefully): everything it was going to write is written.
    rec.rps, rec.p50_ms, rec.p99_ms, rec.errors = res.rps, res.p50_ms, res.p99_ms, res.errors
    rec.rps *= scenario.rows_per_request
    rec.checked = sum(int(t["checked"]) for t in res.threads)
    rec.stale = sum(int(t["stale"]) for t in res.threads)
    if scenario.inserts:
        present = count_rows(acked)
        rec.acked = sum(hi - lo + 1 for lo, hi in acked)
        rec.acked_missing = rec.acked - sum(present)
        written = sum(count_rows(insert_ranges))
        rec.rows_unacked = written - sum(present)
        if settings.slow_notify_ms:
            rec.notify_expected = written
            if peer.notify_log is not None:
                delivered = notifications(log_path, peer.notify_log)
                rec.notify_delivered = delivered - notified_before
    return rec
