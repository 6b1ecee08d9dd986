"""`module.qualname`: how a function is named in logs, cache keys and counts, everywhere alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def qualified_name(function: Callable[..., Any]) -> str:
    """`module.qualname` of a function; a callable object is named after its class."""
    module = getattr(function, "__module__", None) or type(function).__module__
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"
