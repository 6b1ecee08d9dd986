"""Exception types shared across quart_app's modules."""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """A setting has a value quart_app cannot use; the message is one line naming all three."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f"bad setting {key} = {value!r}: expected {expected}")
