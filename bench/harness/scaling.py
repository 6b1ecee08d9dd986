"""Issue 7's scenario 7, in process: how the memory backend scales with its key count.

Get latency with 1k, 100k and 1M keys, and the bytes each entry costs (no HTTP; the wrk half,
one worker against two, is scenarios.py's `get-mem-1w`). main appends it to every report.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import sys
import time
import tracemalloc

KEY_COUNTS = (1_000, 100_000, 1_000_000)
VALUE = "8888"
LOOKUPS = 200_000


async def _measure(count: int) -> dict[str, float]:
    from quart_app.cache import CacheClient, CacheSettings  # only when measured

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


def scaling_report() -> str:
    """Scenario 7's in-process half, as markdown for the end of the report."""
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

