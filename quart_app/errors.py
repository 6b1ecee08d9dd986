"""The package's bottom-layer errors: what any module may raise, importing nothing of ours.

`ConfigError` is raised wherever a setting is checked (config.py, db/, cli.py,
granian_server.py) and reaches `create_app`'s caller; `cli.py` prints its one line and exits
2. It sits below config.py (the import-linter contract in pyproject.toml says so), so that
config.py and anything under it can raise it. Errors that belong to one layer live with
that layer: the store's in db/errors.py, the cache's in cache/, HTTP answers in
http_errors.py. `error_text` is how any module shows an error it caught in a log line or
a message.
"""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """A setting has a value quart_app cannot use; the message is one line naming all three."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f"bad setting {key} = {value!r}: expected {expected}")


def error_text(error: BaseException) -> str:
    """The error as a log line shows it: a timeout's message is empty, so its class names it."""
    return str(error) or type(error).__name__
