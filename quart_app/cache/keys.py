"""Cache keys for views and memoized functions, built from everything that changes the answer.

Where Flask-Caching's view keys go wrong, these do not: the path is always in the key (and
HEAD shares GET's), the query string is in it by default with every value of a repeated
argument and the arguments sorted by name, `key_prefix` is kept whatever else is set, and
the request headers a response names in `Vary` select a variant of the entry. The variable
part of a key is a SHA-256 digest of canonical JSON: bounded in length, and the same in
every process.

Next to each entry key are its generation keys (see `generations`), widest first: for a
view, the whole view, then one path, then one path and query string; for a memoized
function, the whole function, then one set of arguments.

Every key of one view (or memoized function) carries its name as a Redis Cluster hash tag,
`view:{name}:...`: on a cluster they all live in one slot, so an entry and its tokens are
read in one round trip and a lease or a token never crosses slots, while different views
spread over the masters. Other backends store the same keys (nothing reads the braces).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import Headers, MultiDict

from .serialization import ValueSerializer

_serializer = ValueSerializer()
# Built once: json.dumps with options builds a new encoder on every call (a key is 3 digests).
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DEFAULT_REPR: Any = object.__repr__

#: One query-string argument: its name and one of its values.
QueryPairs = list[tuple[str, str]]


#: A hashlib constructor, as Flask-Caching's `hash_method` (hashlib.md5, hashlib.sha1, ...).
HashMethod = Callable[..., Any]


def digest(*parts: Any, hash_method: HashMethod | None = None) -> str:
    """32 hex characters of SHA-256 (or `hash_method`) over the parts as JSON."""
    hashed = (hash_method or hashlib.sha256)(_encoder.encode(parts).encode())
    return str(hashed.hexdigest())[:32]


def source_digest(function: Callable[..., Any]) -> str | None:
    """A digest of the function's source (`source_check`), or None when Python has none."""
    try:
        return digest(inspect.getsource(function))
    except (OSError, TypeError):
        return None


def sorted_query(pairs: Iterable[tuple[str, Any]]) -> QueryPairs:
    """Sorted by name; the values of a repeated name keep their order (it may matter)."""
    return sorted(((str(name), str(value)) for name, value in pairs), key=lambda pair: pair[0])


#: `delete_cached`'s `query_args`: a query string, a mapping or (name, value) pairs.
QueryArgs = str | Mapping[str, Any] | Iterable[tuple[str, Any]]


def query_args_pairs(query_args: QueryArgs) -> QueryPairs:
    """`delete_cached`'s `query_args` (`"a=1&b=2"`, a mapping, list values for repeats, or
    pairs) as pairs."""
    if isinstance(query_args, str):
        return sorted_query(parse_qsl(query_args.lstrip("?"), keep_blank_values=True))
    if isinstance(query_args, MultiDict):  # such as request.args
        return sorted_query(query_args.items(multi=True))
    if not isinstance(query_args, Mapping):
        return sorted_query(query_args)
    return sorted_query(
        (name, value)
        for name, values in query_args.items()
        for value in (values if _is_sequence(values) else [values])
    )


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def vary_names(values: Iterable[str]) -> tuple[str, ...] | None:
    """The header names of `Vary` values, lowercased and sorted; None for `Vary: *`."""
    names = {name.strip().lower() for value in values for name in value.split(",")}
    names.discard("")
    if "*" in names:
        return None
    return tuple(sorted(names))


def vary_pairs(names: Iterable[str], headers: Headers) -> list[tuple[str, str | None]]:
    """What a request sent for each header in `names` (None when it sent none)."""
    pairs: list[tuple[str, str | None]] = []
    for name in names:
        sent = headers.getlist(name)
        pairs.append((name, ", ".join(sent) if sent else None))
    return pairs


@dataclass(frozen=True, slots=True)
class EntryKeys:
    """One entry's key and the keys of the generations it belongs to, widest first."""

    entry: str
    scopes: tuple[str, ...]

    def variant(self, pairs: Sequence[tuple[str, str | None]]) -> str:
        """The key of the variant of a `Vary` response for these request header values."""
        return f"{self.entry}:{digest(pairs)}"


def view_base(name: str) -> str:
    """What every key of the cached view `name` starts with (after the prefix): its hash tag."""
    return f"view:{{{name}}}"


def memo_base(name: str) -> str:
    """What every key of the memoized function `name` starts with: its hash tag."""
    return f"memo:{{{name}}}"


def view_scopes(name: str, path: str | None = None, query: QueryPairs | None = None) -> list[str]:
    """Generation keys of a cached view: the view, then `path`, then `path` with `query`."""
    base = view_base(name)
    scopes = [f"{base}:gen"]
    if path is not None:
        scopes.append(f"{base}:gen:{digest(path)}")
        if query is not None:
            scopes.append(f"{base}:gen:{digest(path, query)}")
    return scopes


def view_keys(
    name: str, prefix: str, path: str, query: QueryPairs | None, custom: str | None,
    hash_method: HashMethod | None = None,
) -> EntryKeys:
    """Keys for one request to a cached view (GET and HEAD alike).

    `query` is None when the view ignores the query string; `custom` is what the view's
    `make_cache_key` returned, which replaces the path and query in the entry key (the
    generations still follow the request's path, so `delete_cached` keeps working).
    """
    varying = [custom] if custom is not None else [path, query]
    scopes = view_scopes(name, path, query if custom is None else None)
    entry = digest(prefix, *varying, hash_method=hash_method)
    return EntryKeys(f"{view_base(name)}:{entry}", tuple(scopes))


def argument_text(name: str, value: Any) -> str:
    """A memoized function's argument as key material.

    Cacheable values (JSON types, tuples, bytes, Decimal, UUID, datetime) are used as they
    are; other objects only when their class defines `__repr__`, which must then identify
    the object: the default repr holds a memory address, which a later object can reuse.
    """
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    caching_id = getattr(type(value), "__caching_id__", None)
    if caching_id is not None and not isinstance(value, type):
        return f"{kind}#{caching_id(value)}"  # Flask-Caching's hook, preferred to repr
    try:
        return _serializer.canonical(value)
    except TypeError:
        if type(value).__repr__ is _DEFAULT_REPR:
            short = type(value).__qualname__
            raise TypeError(
                f"cannot memoize on argument {name!r}: a {short} has no __repr__ that "
                f"identifies it (the default holds a memory address a later object can "
                f"reuse); give {short} a method `def __caching_id__(self): return self.id` "
                f"(or a __repr__) naming what identifies it, or name {name!r} in "
                f"args_to_ignore"
            ) from None
        return f"{kind}:{value!r}"


def arguments_digest(
    signature: inspect.Signature, args: Sequence[Any], kwargs: Mapping[str, Any],
    ignored: frozenset[str], hash_method: HashMethod | None = None,
    source: str | None = None,
) -> str:
    """One digest for a call, whether its arguments were passed by position, name or default."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    parts: list[Any] = []
    for name, value in bound.arguments.items():
        if name in ignored:
            continue
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            parts.append([name, [argument_text(name, item) for item in value]])
        elif kind is inspect.Parameter.VAR_KEYWORD:
            parts.append([name, sorted([key, argument_text(key, item)]
                                       for key, item in value.items())])
        else:
            parts.append([name, argument_text(name, value)])
    if source is not None:
        parts.append(["source", source])
    return digest(parts, hash_method=hash_method)


def memo_scopes(
    name: str, arguments: str | None = None, instance: str | None = None
) -> list[str]:
    """Generation keys of a memoized function: all its entries, then one instance's (for a
    method: the `self` it was called on), then one call's."""
    base = memo_base(name)
    scopes = [f"{base}:gen"]
    if instance is not None:
        scopes.append(f"{base}:gen:self:{digest(instance)}")
    if arguments is not None:
        scopes.append(f"{base}:gen:{arguments}")
    return scopes


def memo_keys(name: str, arguments: str, instance: str | None = None) -> EntryKeys:
    """Keys for one call of a memoized function (`arguments` from `arguments_digest`,
    `instance` the text of the `self` of a method)."""
    return EntryKeys(f"{memo_base(name)}:{arguments}",
                     tuple(memo_scopes(name, arguments, instance)))
