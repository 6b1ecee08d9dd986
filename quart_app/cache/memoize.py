"""`memoize`: Flask-Caching's function decorator, async, and `delete_memoized`.

The key is the function's name and its arguments bound to its signature, so `f(1)`,
`f(a=1)` and `f()` with a default of 1 share one entry. A result comes back by value, the
same for the caller that computed it as for a cache hit (both get it through the cache's
tagged JSON); `None` is cached only with `cache_none=True`, as in Flask-Caching. Concurrent
misses of one key run the function once (`single_flight`), and entries are invalidated by
generation (`generations`), so `delete_memoized` is safe against a computation already
under way. A method's entries also belong to their instance (`self`), so
`delete_memoized(obj.method)` forgets one instance's.

`ValueCall` is shared with `cached` on a plain (non-view) function, which stores the
function's value the same way under its own keys.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, overload

from quart import current_app

from ..names import qualified_name
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
from .keys import (
    EntryKeys,
    HashMethod,
    argument_text,
    arguments_digest,
    memo_keys,
    memo_scopes,
    source_digest,
)
from .runtime import (
    CacheRuntime,
    DecoratedCall,
    bypassed,
    call_user,
    judged_stale,
    settings_of,
    update_forced,
)
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
    hash_method: HashMethod | None
    #: `source_check` as given (None: CACHE_SOURCE_CHECK), and the source's digest.
    source_check: bool | None
    source: str | None

    @property
    def instance_parameter(self) -> str | None:
        """`self` when the function is a method whose instance is part of its keys."""
        names = list(self.signature.parameters)
        if names and names[0] == "self" and "self" not in self.ignored:
            return "self"
        return None

    def keys(self, runtime: CacheRuntime, args: Sequence[Any],
             kwargs: Mapping[str, Any]) -> EntryKeys:
        check = runtime.source_check if self.source_check is None else self.source_check
        arguments = arguments_digest(self.signature, args, kwargs, self.ignored,
                                     self.hash_method or runtime.hash_method,
                                     self.source if check else None)
        return memo_keys(self.name, arguments, self.instance_of(args, kwargs))

    def instance_of(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
        if self.instance_parameter is None:
            return None
        instance = args[0] if args else kwargs.get("self")
        return argument_text("self", instance)


@dataclass(frozen=True, slots=True)
class ValueOptions:
    """What decides whether a call is served from the cache and whether its value is stored."""

    unless: Callable[..., Any] | None = None
    forced_update: Callable[..., Any] | None = None
    response_filter: Callable[[Any], Any] | None = None
    cache_none: bool = False
    #: Called with a cached value (and the call's arguments); true recomputes it.
    is_stale: Callable[..., Any] | None = None


class Memoizer:
    """What `memoize(...)` returns: decorates async functions, and sync ones (made async)."""

    def __init__(
        self, runtime: Callable[[], CacheRuntime], timeout: float | None,
        make_name: Callable[[str], str] | None, args_to_ignore: Iterable[str] | None,
        options: ValueOptions, hash_method: HashMethod | None = None,
        source_check: bool | None = None,
    ) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError("a cache timeout cannot be negative")
        self.runtime = runtime
        self.timeout = timeout
        self.make_name = make_name
        self.ignored = frozenset(args_to_ignore or ())
        self.options = options
        self.hash_method = hash_method
        self.source_check = source_check

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
            signature, self.ignored, self.hash_method, self.source_check,
            source_digest(function),
        )
        options = self.options

        @functools.wraps(function)
        async def memoized(*args: P.args, **kwargs: P.kwargs) -> Any:
            runtime = self.runtime()
            call = ValueCall(settings.name, memoized.cache_timeout,  # type: ignore[attr-defined]
                             runtime, function, args, kwargs)
            if await bypassed(options.unless, function, args, kwargs):
                return await call.bypass()
            return await call.result(settings.keys(runtime, args, kwargs), options)

        def make_cache_key(_function: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
            """Flask-Caching's `f.make_cache_key(f.uncached, *args)`: the entry's key, for
            `cache.delete(key)` (needs the app: CACHE_SOURCE_CHECK is its setting)."""
            return settings.keys(self.runtime(), args, kwargs).entry

        async def forget() -> None:
            await delete_memoized(self.runtime(), memoized)

        vars(memoized).update(memoize=settings, uncached=function, cache_timeout=self.timeout,
                              make_cache_key=make_cache_key, delete_memoized=forget)
        return memoized


async def delete_memoized(
    runtime: CacheRuntime, function: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    """Invalidate one call's entry; with no arguments every entry of `function`, or of one
    instance when `function` is a method bound to it (`obj.method`).

    A bound method supplies its instance, as in Flask-Caching 2.5 (`delete_memoized(obj.add,
    3)`; passing it again also works); through the class it must be given
    (`delete_memoized(Adder.add, obj, 3)`), and a classmethod needs its class
    (`delete_memoized(Mock.method, Mock, 5, 2)`).
    """
    target = getattr(function, "__func__", function)
    bound_to = getattr(function, "__self__", None)
    settings = settings_of(target, MemoizedFunction, "memoize")
    client = runtime.client
    if bound_to is not None and not inspect.isclass(bound_to):
        if not args and not kwargs:
            instance = settings.instance_of((bound_to,), {})
            await invalidate(client, memo_scopes(settings.name, instance=instance)[-1])
            return
        if not (args and args[0] is bound_to):
            args = (bound_to, *args)
    elif not args and not kwargs:
        await invalidate(client, memo_scopes(settings.name)[0])
        return
    try:
        keys = settings.keys(runtime, args, kwargs)
    except TypeError as error:
        if "missing" not in str(error):
            raise
        first = next(iter(settings.signature.parameters), "self")
        raise ValueError(
            f"delete_memoized({settings.name}, ...): {error}; for a method reached through "
            f"its class pass the `{first}` argument first, e.g. "
            f"delete_memoized(Class.method, {'Class' if first == 'cls' else 'instance'}, ...)"
        ) from None
    await invalidate(client, keys.scopes[-1])


@dataclass(frozen=True, slots=True)
class _Result:
    #: The value as the cache stores it: each caller decodes its own copy.
    text: str
    from_cache: bool = False
    store_failed: bool = False


class ValueCall(DecoratedCall):
    """One call of a memoized function, or of `cached` on a plain function: its value is
    served from the cache, or computed once and stored."""

    async def bypass(self) -> Any:
        self.record("bypass")
        return await self._call()

    async def result(self, keys: EntryKeys, options: ValueOptions) -> Any:
        """The value, from the cache or computed."""
        value, _ = await self.result_and_hit(keys, options)
        return value

    async def result_and_hit(self, keys: EntryKeys, options: ValueOptions) -> tuple[Any, bool]:
        """The value, and whether it came from the cache."""
        forced = options.forced_update is not None and await update_forced(
            options.forced_update, self.args, self.kwargs)
        try:
            stored, seen = await read(self.client, keys.entry, keys.scopes)
            value, state = unwrap(stored, seen)
            if state == "hit" and not forced and (value is not None or options.cache_none):
                if options.is_stale is None or not await judged_stale(
                        options.is_stale, value, self.args, self.kwargs):
                    self.record("hit")
                    return value, True
                forced, state = True, "stale"
            if state == "hit":
                state = "miss"  # forced, or a None that cache_none=False does not serve
            tokens = await establish(self.client, keys.scopes, seen, self.lifetime)
        except Contended:
            self.record("stale")  # invalidated while it was being read: not stored
            return await self._call(), False
        except Exception:
            logger.exception("cache failed for %s; calling it uncached", self.name)
            tokens = None
        if tokens is None:
            self.record("error")
            return await self._call(), False
        current = tokens
        if forced:
            result = await self._compute(keys, current, options)
        else:
            result, _ = await self.runtime.once(
                computation_key(keys.entry, current),
                lambda: self._compute(keys, current, options),
                lambda: self._look(keys, current, options),
            )
        self.record("hit" if result.from_cache else "error" if result.store_failed else state)
        return _serializer.loads(result.text), result.from_cache

    async def _look(self, keys: EntryKeys, tokens: Tokens, options: ValueOptions
                    ) -> _Result | None:
        value, state = unwrap(await self.client.get(keys.entry), tokens)
        if state != "hit" or (value is None and not options.cache_none):
            return None
        return _Result(_serializer.dumps(value), from_cache=True)

    async def _compute(self, keys: EntryKeys, tokens: Tokens, options: ValueOptions
                       ) -> _Result:
        value = await self._call()
        text = _serializer.dumps(value)  # a TypeError here is the caller's to see
        if value is None and not options.cache_none:
            return _Result(text)
        if options.response_filter is not None and not await call_user(
                options.response_filter, value):
            return _Result(text)
        try:
            stored = await self.client.set(keys.entry, wrap(value, tokens), self.lifetime)
        except Exception:
            logger.exception("cache failed storing %s; returned uncached", self.name)
            stored = False
        return _Result(text, store_failed=not stored)

    async def _call(self) -> Any:
        return await current_app.ensure_async(self.function)(*self.args, **self.kwargs)
