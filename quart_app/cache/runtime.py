"""What the decorators need when a decorated function runs: one app's cache and its helpers.

A decorator is applied once, at import, but each call belongs to the app serving it; the
`Cache` extension hands the decorators a function that returns this for the current app.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..names import qualified_name
from .client import CacheClient
from .keys import digest
from .single_flight import LeasePolicy, SingleFlight, run_leased
from .stats import CacheStats, Outcome

T = TypeVar("T")
S = TypeVar("S")


@dataclass(slots=True)
class CacheRuntime:
    """One serving app's cache client, with the flights, counts and switches of its decorators."""

    client: CacheClient
    #: CACHE_HONOR_NO_CACHE: a request's `Cache-Control: no-cache` recomputes the entry.
    honor_no_cache: bool = False
    #: CACHE_SOURCE_CHECK: the default of the decorators' `source_check`.
    source_check: bool = False
    #: CACHE_HASH_METHOD: the default of the decorators' `hash_method` (None: SHA-256).
    hash_method: Callable[..., Any] | None = None
    flights: SingleFlight = field(default_factory=SingleFlight)
    stats: CacheStats = field(default_factory=CacheStats)
    lease: LeasePolicy = field(default_factory=LeasePolicy)

    def lifetime(self, timeout: float | None) -> float:
        """A decorator's `timeout` in seconds (None: CACHE_DEFAULT_TIMEOUT; 0: no expiry)."""
        return float(self.client.settings.default_timeout if timeout is None else timeout)

    async def once(
        self, key: str, compute: Callable[[], Awaitable[T]],
        look: Callable[[], Awaitable[T | None]],
    ) -> tuple[T, bool]:
        """`compute()` once per process for `key` and, on Redis, once across processes.

        Returns the result and whether this caller computed it; `look` finds the entry
        another process stored while this one waited on its lease (see `single_flight`).
        """
        async def compute_leased() -> T:
            if not self.client.is_shared:
                return await compute()
            result, _ = await run_leased(self.client, f"lease:{digest(key)}", self.lease,
                                         compute, look)
            return result

        return await self.flights.run(key, compute_leased)


class DecoratedCall:
    """One call of a cached view or a memoized function, and what it needs until it returns."""

    def __init__(
        self, name: str, timeout: float | None, runtime: CacheRuntime,
        function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
    ) -> None:
        self.name = name
        self.runtime = runtime
        self.client = runtime.client
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.lifetime = runtime.lifetime(timeout)

    def record(self, outcome: Outcome) -> None:
        self.runtime.stats.record(self.name, outcome)


async def bypassed(
    unless: Callable[..., Any] | None, function: Callable[..., Any],
    args: tuple[Any, ...], kwargs: dict[str, Any],
) -> bool:
    """Flask-Caching's `unless`: called with the function and its arguments if it takes any."""
    if unless is None:
        return False
    if takes_arguments(unless):
        return bool(await call_user(unless, function, *args, **kwargs))
    return bool(await call_user(unless))


async def update_forced(
    callback: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bool:
    """Flask-Caching's `forced_update`: called with the call's arguments if it takes any."""
    if takes_arguments(callback):
        return bool(await call_user(callback, *args, **kwargs))
    return bool(await call_user(callback))


async def judged_stale(
    is_stale: Callable[..., Any], value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bool:
    """Flask-Caching's `is_stale(cached_value)`, or `is_stale(cached_value, *args, **kwargs)`
    when it takes more than one positional argument."""
    try:
        positional = sum(parameter.kind is not inspect.Parameter.KEYWORD_ONLY
                         for parameter in inspect.signature(is_stale).parameters.values())
    except (TypeError, ValueError):
        positional = 1
    if positional > 1:
        return bool(await call_user(is_stale, value, *args, **kwargs))
    return bool(await call_user(is_stale, value))


async def call_user(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a user's callback (`unless`, `response_filter`, ...), sync or async."""
    result = function(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def takes_arguments(function: Callable[..., Any]) -> bool:
    """Whether a callback wants arguments, as Flask-Caching decides for `unless`."""
    try:
        return bool(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def settings_of(function: Callable[..., Any], kind: type[S], decorator: str) -> S:
    """The settings a decorator attached to `function` (as `function.<decorator>`)."""
    settings = vars(function).get(decorator)
    if not isinstance(settings, kind):
        raise TypeError(f"{qualified_name(function)} is not decorated with cache.{decorator}")
    return settings
