"""The tutorial's page-visit counter: request_finished counts visits per route.

Counting happens in process memory (request_finished is awaited inline by Quart, so a cache
round trip there would be paid by every response); a task adds the counts to the cache every
`VISITS_FLUSH_INTERVAL` seconds and once more when the app stops, so with Redis the totals
are shared by every worker and none is lost at shutdown. A counter the cache refuses to add
to (Redis stops at 2**63 - 1) stays where it is: logged once, its new visits dropped, never
an error for the request or the end of the flushing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
EXTENSION_KEY = "visits"

logger = logging.getLogger("quart_app.visits")


class VisitCounter:
    def __init__(self) -> None:
        self.pending: Counter[str] = Counter()
        self._full: set[str] = set()  # rules whose counter the cache refused to increase

    def count(self, rule: str) -> None:
        self.pending[rule] += 1

    async def flush(self, client: CacheClient) -> None:
        pending, self.pending = self.pending, Counter()
        for rule, visits in pending.items():
            try:
                stored = await client.inc(VISITS_KEY.format(rule=rule), visits)
            except CacheUnavailable:
                stored = None
            except Exception as error:
                # Whatever the backend raises for a refused increment (Redis: "would
                # overflow" or "not an integer"): kept for next time, they would fail again.
                if rule not in self._full:
                    logger.warning("visits of %s: cannot add to the counter (%s); it stays "
                                   "where it is", rule, error)
                    self._full.add(rule)
                continue
            if stored is None:
                self.pending[rule] += visits  # the cache is down: keep them for next time
            else:
                self._full.discard(rule)

    async def totals(self, client: CacheClient, rules: list[str]) -> dict[str, int]:
        await self.flush(client)
        counts = await client.get_many(*(VISITS_KEY.format(rule=rule) for rule in rules))
        return {rule: int(count) for rule, count in zip(rules, counts, strict=True) if count}


def count_visit(app: Quart, rule: str) -> None:
    """Count a visit of `rule` answered outside Quart (a fast cache hit); no-op when the
    visits receiver is off."""
    counter = visit_counter(app)
    if counter is not None:
        counter.count(rule)


def visit_counter(app: Quart) -> VisitCounter | None:
    """The app's visit counter; None when the visits receiver is off (the one accessor)."""
    counter: VisitCounter | None = app.extensions.get(EXTENSION_KEY)
    return counter


def connect(app: Quart) -> None:
    counter = app.extensions[EXTENSION_KEY] = VisitCounter()
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
