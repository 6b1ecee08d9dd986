"""Small helpers more than one test module needs (one home, rather than importing across tests)."""

from __future__ import annotations

import pytest


def messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    """The messages `logger` (by its exact name) logged during the test."""
    return [record.getMessage() for record in caplog.records if record.name == logger]
