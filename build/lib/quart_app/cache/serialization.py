"""How cached values become text and back: tagged JSON, never pickle.

Every backend stores the text, so a value read back is always a fresh copy (mutating it never
changes the cache), behaves the same in memory and in Redis, and a shared Redis can hand us
nothing that executes when loaded. Flask's tagged JSON keeps tuples, bytes, UUIDs and
datetimes; money is a Decimal in this project, so Decimals are tagged too.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from flask.json.tag import JSONTag, TaggedJSONSerializer


class TagDecimal(JSONTag):
    __slots__ = ()
    key = " dec"

    def check(self, value: Any) -> bool:
        return isinstance(value, Decimal)

    def to_json(self, value: Any) -> Any:
        return str(value)

    def to_python(self, value: Any) -> Any:
        return Decimal(value)


class ValueSerializer:
    """Turns cacheable values into text; raises TypeError naming the type it cannot store."""

    def __init__(self) -> None:
        self._tagged = TaggedJSONSerializer()
        self._tagged.register(TagDecimal)
        # Built once: json.loads/dumps with options build a new coder on every call.
        self._encoder = json.JSONEncoder(separators=(",", ":"))
        self._sorted_encoder = json.JSONEncoder(separators=(",", ":"), sort_keys=True)
        self._decoder = json.JSONDecoder(object_hook=self._tagged.untag)

    def dumps(self, value: Any) -> str:
        return self._encode(self._encoder, value)

    def canonical(self, value: Any) -> str:
        """`dumps` with sorted keys: equal values always give equal text (for cache keys)."""
        return self._encode(self._sorted_encoder, value)

    def _encode(self, encoder: json.JSONEncoder, value: Any) -> str:
        try:
            return encoder.encode(self._tagged.tag(value))
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"cannot cache a value of type {type(value).__name__}: values must be JSON "
                f"types, tuples, bytes, Decimal, UUID or datetime ({error})"
            ) from None

    def loads(self, text: str | bytes) -> Any:
        # Straight to the stdlib: flask.json would look up an app context on every call.
        return self._decoder.decode(text.decode() if isinstance(text, bytes) else text)
