"""What the decorators need when a decorated function runs: one app's cache and its helpers.

A decorator is applied once, at import, but each call belongs to the app serving it; the
`Cache` extension hands the decorators a function that returns this for the current app.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .client import CacheClient
from .single_flight import LeasePolicy, SingleFlight
from .stats import CacheStats


@dataclass(slots=True)
class CacheRuntime:
    client: CacheClient
    #: CACHE_HONOR_NO_CACHE: a request's `Cache-Control: no-cache` recomputes the entry.
    honor_no_cache: bool = False
    flights: SingleFlight = field(default_factory=SingleFlight)
    stats: CacheStats = field(default_factory=CacheStats)
    lease: LeasePolicy = field(default_factory=LeasePolicy)


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
