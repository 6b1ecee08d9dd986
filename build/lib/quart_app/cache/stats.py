"""Per-view (and per memoized function) counts of what the cache did, for code and /readyz."""

from __future__ import annotations

from collections import Counter
from typing import Literal

#: How one call went: served from the cache; computed because nothing was cached; computed
#: because the entry had been invalidated; computed uncached because the cache failed; or
#: not cached at all (a method other than GET/HEAD, or `unless` said so).
Outcome = Literal["hit", "miss", "stale", "error", "bypass"]

OUTCOMES: tuple[Outcome, ...] = ("hit", "miss", "stale", "error", "bypass")


class CacheStats:
    """Counts per decorated function, for one app in one process."""

    def __init__(self) -> None:
        self._counts: dict[str, Counter[Outcome]] = {}

    def record(self, name: str, outcome: Outcome) -> None:
        """Count one call of the function `name`."""
        counts = self._counts.get(name)
        if counts is None:
            counts = self._counts[name] = Counter()
        counts[outcome] += 1

    def of(self, name: str) -> dict[str, int]:
        """One function's counts, every outcome present (0 when it never happened)."""
        counts = self._counts.get(name, Counter())
        return {outcome: counts[outcome] for outcome in OUTCOMES}

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Every function's counts, by qualified name."""
        return {name: self.of(name) for name in sorted(self._counts)}
