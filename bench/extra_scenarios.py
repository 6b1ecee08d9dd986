"""Issue 7's scenario 7: how the memory backend scales, and 1 worker against 2.

Loaded by bench/run.py (`load_extras`): `SCENARIOS` adds the one-worker runs of the cached
read to the wrk table; `extra_report` measures the memory backend in process (no HTTP):
get latency with 1k, 100k and 1M keys, and the bytes each entry costs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quart_app.cache import CacheClient, CacheSettings  # noqa: E402
from run import GET_PROBE, Scenario, Settings  # noqa: E402

SCENARIOS = [
    Scenario("get-mem-1w", "7. cached read `/get`, memory, 1 worker",
             "GET /get, memory cache, one worker process", "read.lua", "/get",
             Settings(cache="memory", workers=1), prime_get=True, probes=(GET_PROBE,)),
]

KEY_COUNTS = (1_000, 100_000, 1_000_000)
VALUE = "8888"
LOOKUPS = 200_000


async def _measure(count: int) -> dict[str, float]:
    client = CacheClient(CacheSettings(cache_type="SimpleCache", threshold=count))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for start in range(0, count, 10_000):
        await client.set_many({f"k{i}": VALUE for i in range(start, min(count, start + 10_000))},
                              timeout=3600)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_key = (after - before) / count
    # What a caller would store anyway: the key (with its prefix) and the value's JSON text.
    key_and_value = sys.getsizeof(f"quart_app:k{count // 2}") + sys.getsizeof('"8888"')

    keys = [f"k{random.randrange(count)}" for _ in range(LOOKUPS)]
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        for key in keys:
            await client.get(key)
        timings.append((time.perf_counter() - started) / LOOKUPS * 1e6)
    entries = client.backend._entries  # the same keys, read as a plain dict would be
    plain_keys = [f"quart_app:{key}" for key in keys]
    dict_timings = []
    for _ in range(5):
        started = time.perf_counter()
        for key in plain_keys:
            entries.get(key)
        dict_timings.append((time.perf_counter() - started) / LOOKUPS * 1e6)
    await client.close()
    return {"count": count, "get_us": statistics.median(timings), "bytes_per_key": per_key,
            "overhead_per_key": per_key - key_and_value,
            "dict_us": statistics.median(dict_timings)}


def extra_report(args: argparse.Namespace) -> str:
    results = [asyncio.run(_measure(count)) for count in KEY_COUNTS]
    lines = [
        "### 7. Memory backend scaling (in process, no HTTP)",
        "",
        f"`CacheClient.get` of a random existing key, median of 5 x {LOOKUPS:,} calls; bytes "
        "per entry from tracemalloc (entry, key string and value text), and the overhead "
        "beyond the key and value strings themselves.",
        "",
        "| keys | get (us) | bare dict lookup of the same keys (us) | bytes per entry "
        "| overhead beyond key + value |",
        "|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(f"| {result['count']:,} | {result['get_us']:.2f} | {result['dict_us']:.3f} "
                     f"| {result['bytes_per_key']:.0f} | {result['overhead_per_key']:.0f} |")
    flat = results[-1]["get_us"] / results[0]["get_us"]
    extra = (results[-1]["get_us"] - results[-1]["dict_us"]) / (
        results[0]["get_us"] - results[0]["dict_us"])
    lines += ["", f"Get latency 1M keys / 1k keys: {flat:.2f} (the part above the bare dict "
              f"lookup: {extra:.2f}; what grows is memory latency, which a dict pays too)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(extra_report(argparse.Namespace()))
