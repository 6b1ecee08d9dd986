"""The info API's tests run on both databases: a fresh SQLite file, then MariaDB with an empty
table (times each cache backend of `cache_config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..services import MYSQL_URL, require_service
from ..support import reset_mysql_table


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'info.sqlite3'}"
    url = require_service("MariaDB", MYSQL_URL)
    reset_mysql_table(url)
    return url


@pytest.fixture
def app_config(cache_config: dict[str, Any], database_url: str) -> dict[str, Any]:
    return {**cache_config, "DATABASE_URL": database_url}
