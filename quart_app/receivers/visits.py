"""The tutorial's page-visit counter: request_finished counts visits per route.

Counting happens in process memory (request_finished is awaited inline by Quart, so a cache
round trip there would be paid by every response); a task adds the counts to the cache every
`VISITS_FLUSH_INTERVAL` seconds and once more when the app stops, so with Redis the totals
are shared by every worker and none is lost at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncGenerator
from typing import Any

from quart import Quart, Response, request
from quart.signals import request_finished

from ..cache import CacheClient, CacheUnavailable
from ..dispatch import receiver
from ..extensions import cache

COUNTERS_NAMESPACE = "stats:"
VISITS_KEY = COUNTERS_NAMESPACE + "visits:{rule}"


class VisitCounter:
    def __init__(self) -> None:
        self.pending: Counter[str] = Counter()

    def count(self, rule: str) -> None:
        self.pending[rule] += 1

    async def flush(self, client: CacheClient) -> None:
        pending, self.pending = self.pending, Counter()
        for rule, visits in pending.items():
            try:
                stored = await client.inc(VISITS_KEY.format(rule=rule), visits)
            except CacheUnavailable:
                stored = None
            if stored is None:
                self.pending[rule] += visits  # the cache is down: keep them for next time

    async def totals(self, client: CacheClient, rules: list[str]) -> dict[str, int]:
        await self.flush(client)
        counts = await client.get_many(*(VISITS_KEY.format(rule=rule) for rule in rules))
        return {rule: int(count) for rule, count in zip(rules, counts, strict=True) if count}


def visit_counter(app: Quart) -> VisitCounter:
    counter: VisitCounter = app.extensions["visits"]
    return counter


def connect(app: Quart) -> None:
    counter = app.extensions["visits"] = VisitCounter()
    interval = app.config["VISITS_FLUSH_INTERVAL"]

    @receiver(request_finished, app, dispatch_uid="visits.request_finished")
    async def count_visit(sender: Quart, response: Response, **extra: Any) -> None:
        if request.url_rule is not None:
            counter.count(request.url_rule.rule)

    # while_serving ends before after_serving closes the cache: the last flush still lands.
    @app.while_serving
    async def flush_periodically() -> AsyncGenerator[None, None]:
        client = cache.client_for(app)
        # Every shipped counter (visits, inserts, notifications) lives under "stats:": an
        # outage can leave a count short, never stale, so the cache never forgets them.
        client.preserve(COUNTERS_NAMESPACE)

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                await counter.flush(client)

        task = asyncio.get_running_loop().create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await counter.flush(client)
