"""`memoize`: Flask-Caching's function decorator, async, and `delete_memoized`.

The key is the function's name and its arguments bound to its signature, so `f(1)`,
`f(a=1)` and `f()` with a default of 1 share one entry. A result comes back by value, the
same for the caller that computed it as for a cache hit (both get it through the cache's
tagged JSON), and `None` is cached like any other value. Concurrent misses of one key run
the function once (`single_flight`), and entries are invalidated by generation
(`generations`), so `delete_memoized` is safe against a computation already under way.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, overload

from quart import current_app

from .client import CacheClient
from .generations import (
    Contended,
    Tokens,
    computation_key,
    establish,
    invalidate,
    read,
    unwrap,
    wrap,
)
from .keys import EntryKeys, arguments_digest, memo_keys, memo_scopes, qualified_name
from .runtime import CacheRuntime, DecoratedCall, bypassed, settings_of
from .serialization import ValueSerializer

logger = logging.getLogger("quart_app.cache")

P = ParamSpec("P")
T = TypeVar("T")

_serializer = ValueSerializer()


@dataclass(frozen=True, slots=True)
class MemoizedFunction:
    """A function's memoize settings, attached to the decorated function as `function.memoize`."""

    name: str
    signature: inspect.Signature
    ignored: frozenset[str]
    timeout: float | None

    def arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        return arguments_digest(self.signature, args, kwargs, self.ignored)


class Memoizer:
    """What `memoize(...)` returns: decorates async functions, and sync ones (made async)."""

    def __init__(
        self, runtime: Callable[[], CacheRuntime], timeout: float | None,
        make_name: Callable[[str], str] | None, unless: Callable[..., Any] | None,
        args_to_ignore: Iterable[str] | None,
    ) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError("a cache timeout cannot be negative")
        self.runtime = runtime
        self.timeout = timeout
        self.make_name = make_name
        self.unless = unless
        self.ignored = frozenset(args_to_ignore or ())

    @overload
    def __call__(self, function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]: ...

    @overload
    def __call__(self, function: Callable[P, T]) -> Callable[P, Awaitable[T]]: ...

    def __call__(self, function: Callable[P, Any]) -> Callable[P, Awaitable[Any]]:
        name = qualified_name(function)
        signature = inspect.signature(function)
        unknown = self.ignored - set(signature.parameters)
        if unknown:
            raise TypeError(f"args_to_ignore names no argument of {name}: {sorted(unknown)}")
        settings = MemoizedFunction(
            self.make_name(name) if self.make_name is not None else name,
            signature, self.ignored, self.timeout,
        )

        @functools.wraps(function)
        async def memoized(*args: P.args, **kwargs: P.kwargs) -> Any:
            call = _MemoizedCall(settings, self.runtime(), function, args, kwargs)
            if await bypassed(self.unless, function, args, kwargs):
                return await call.bypass()
            return await call.result()

        vars(memoized).update(memoize=settings, uncached=function, cache_timeout=self.timeout)
        return memoized


async def delete_memoized(
    client: CacheClient, function: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    """Invalidate one call's entry, or with no arguments every entry of `function`."""
    settings = settings_of(function, MemoizedFunction, "memoize")
    if not args and not kwargs:
        await invalidate(client, memo_scopes(settings.name)[0])
        return
    arguments = settings.arguments(args, kwargs)
    await invalidate(client, memo_scopes(settings.name, arguments)[-1])


@dataclass(frozen=True, slots=True)
class _Result:
    #: The value as the cache stores it: each caller decodes its own copy.
    text: str
    from_cache: bool = False
    store_failed: bool = False


class _MemoizedCall(DecoratedCall):
    def __init__(
        self, settings: MemoizedFunction, runtime: CacheRuntime, function: Callable[..., Any],
        args: tuple[Any, ...], kwargs: dict[str, Any],
    ) -> None:
        super().__init__(settings.name, settings.timeout, runtime, function, args, kwargs)
        self.settings = settings

    async def bypass(self) -> Any:
        self.record("bypass")
        return await self._call()

    async def result(self) -> Any:
        keys = memo_keys(self.settings.name, self.settings.arguments(self.args, self.kwargs))
        try:
            stored, seen = await read(self.client, keys.entry, keys.scopes)
            value, state = unwrap(stored, seen)
            if state == "hit":
                self.record("hit")
                return value
            tokens = await establish(self.client, keys.scopes, seen, self.lifetime)
        except Contended:
            self.record("stale")  # invalidated while it was being read: not stored
            return await self._call()
        except Exception:
            logger.exception("cache failed for %s; calling it uncached", self.settings.name)
            tokens = None
        if tokens is None:
            self.record("error")
            return await self._call()
        result, _ = await self.runtime.once(
            computation_key(keys.entry, tokens),
            lambda: self._compute(keys, tokens), lambda: self._look(keys, tokens),
        )
        outcome = "hit" if result.from_cache else "error" if result.store_failed else state
        self.record(outcome)
        return _serializer.loads(result.text)

    async def _look(self, keys: EntryKeys, tokens: Tokens) -> _Result | None:
        value, state = unwrap(await self.client.get(keys.entry), tokens)
        if state != "hit":
            return None
        return _Result(_serializer.dumps(value), from_cache=True)

    async def _compute(self, keys: EntryKeys, tokens: Tokens) -> _Result:
        value = await self._call()
        text = _serializer.dumps(value)  # a TypeError here is the caller's to see
        try:
            stored = await self.client.set(keys.entry, wrap(value, tokens), self.lifetime)
        except Exception:
            logger.exception("cache failed storing %s; returned uncached", self.settings.name)
            stored = False
        return _Result(text, store_failed=not stored)

    async def _call(self) -> Any:
        return await current_app.ensure_async(self.function)(*self.args, **self.kwargs)
