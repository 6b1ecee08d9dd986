"""Invalidation by generation tokens, safe against the read-compute-store race.

Deleting an entry is not enough to invalidate it: a reader that missed just before an insert
committed can compute the old answer and store it just after the insert deleted the key, and
that stale entry then outlives the insert. So every entry belongs to scopes (a view, one of
its paths, ...), each with a random token under its own key, and an entry records the tokens
that were current *before* its value was computed. Invalidating a scope deletes its token;
the next reader makes a new one, and every entry recorded under the old token, including one
stored late by a slow reader, no longer matches and is never served.

A token that expires or is evicted works the same way as a deleted one (its entries become
misses), and a deletion dropped during a Redis outage is made again by `CacheClient` as soon
as Redis answers (the write that needed it is answered 503, see `write_guard`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Literal

from .client import MISSING, CacheClient

#: The tokens of an entry's scopes, in the order of its scope keys.
Tokens = tuple[str, ...]
#: What a lookup found: a current entry, nothing, or an entry an invalidation outdated.
State = Literal["hit", "miss", "stale"]

#: Times a reader makes a scope's token that invalidations keep deleting, before it gives up.
MAX_TOKEN_ATTEMPTS = 3

_TOKENS = "t"
_VALUE = "v"


def wrap(value: Any, tokens: Tokens) -> dict[str, Any]:
    """The stored form of an entry: its value and the tokens it was computed under."""
    return {_TOKENS: list(tokens), _VALUE: value}


def unwrap(stored: Any, tokens: Sequence[str | None]) -> tuple[Any, State]:
    """The entry's value if it was stored under exactly `tokens`, else MISSING and why."""
    entry = recorded(stored)
    if entry is None:
        return MISSING, "miss"
    if None in tokens or entry[0] != list(tokens):
        return MISSING, "stale"
    return entry[1], "hit"


def recorded(stored: Any) -> tuple[list[str], Any] | None:
    """The tokens an entry was stored under and its value; None for what `wrap` did not make."""
    if not isinstance(stored, dict) or _TOKENS not in stored or _VALUE not in stored:
        return None
    return list(stored[_TOKENS]), stored[_VALUE]


async def read(
    client: CacheClient, key: str, scopes: Sequence[str]
) -> tuple[Any, tuple[str | None, ...]]:
    """The raw entry under `key` and the current token of each scope, in one round trip."""
    stored, *tokens = await client.get_many(key, *scopes)
    return stored, tuple(token if isinstance(token, str) else None for token in tokens)


async def establish(
    client: CacheClient, scopes: Sequence[str], seen: Sequence[str | None],
    timeout: float,
) -> Tokens | None:
    """The current tokens, making the missing ones; None when the cache cannot tell (it is
    unreachable, in its retry pause or suspended).

    Call it before computing the value: the entry is valid only if no invalidation came
    between this and the computation. A token lives twice the entries' `timeout` (0: no
    expiry), so it outlasts the entries recorded under it.
    """
    if not client.is_usable:
        return None
    tokens: list[str] = []
    for key, token in zip(scopes, seen, strict=True):
        attempts = 0
        while token is None:
            candidate = secrets.token_hex(8)
            if await client.add(key, candidate, timeout=timeout * 2):
                token = candidate
                break
            # Another reader made it first (or the cache is unreachable): use theirs.
            current = await client.get(key)
            if isinstance(current, str):
                token = current
            elif not client.is_usable:
                return None
            else:
                # Not a fault: an invalidation deleted it between the two calls. Make one
                # again; under a storm of invalidations, give up (the caller runs uncached).
                attempts += 1
                if attempts >= MAX_TOKEN_ATTEMPTS:
                    raise Contended(key)
        tokens.append(token)
    return tuple(tokens) if client.is_usable else None


class Contended(Exception):
    """Invalidations kept deleting a scope's token while a reader made it (a race, not a
    cache failure): the reader computes its answer without storing it."""


def computation_key(key: str, tokens: Tokens) -> str:
    """Who may share a computation of `key`: only callers that saw the same tokens."""
    return f"{key}|{','.join(tokens)}"


async def invalidate(client: CacheClient, scope: str) -> bool:
    """Outdate every entry recorded under this scope's token; False when there was none (so
    nothing was cached under the scope)."""
    return await client.delete(scope)
