"""Finding the real servers the tests talk to.

A test that needs MariaDB or Redis asks for it through `require_service`: on a machine
without the server the test is skipped with the reason, but under CI (`CI=true`) a missing
server fails the run, because a green run that skipped everything proves nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

REDIS_URL = os.environ.get("QUART_APP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# A database of this test run's own: two runs on one machine (a developer's and a helper's,
# say) would otherwise empty each other's tables. Dropped when the run ends.
MYSQL_URL = os.environ.get("QUART_APP_TEST_MYSQL_URL",
                           f"mysql://root@127.0.0.1:3306/quart_app_test_{os.getpid()}")


def running_under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def port_is_open(url: str, timeout: float = 1.0) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout):
            return True
    except OSError:
        return False


def drop_test_database(url: str) -> None:
    """Remove a run's own database (`MYSQL_URL`), if the server is there to ask."""
    if not port_is_open(url):
        return
    import pymysql  # only runs that reached MariaDB get here

    parts = urlsplit(url)
    connection = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                                 user=parts.username or "root", password=parts.password or "")
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{parts.path.lstrip('/')}`")
    finally:
        connection.close()


def forget_redis_prefix(url: str, prefix: str) -> None:
    """Remove what a server under test left under its key prefix (the Redis may be gone)."""
    import redis  # only tests that used Redis get here

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.unlink(*keys)
    except redis.ConnectionError:
        pass
    finally:
        client.close()


def missing_service(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI, where every service must be there."""
    if running_under_ci():
        pytest.fail(f"{reason}, and CI=true makes a missing service a failure", pytrace=False)
    pytest.skip(reason)


def require_service(name: str, url: str) -> str:
    """Return `url` when its server answers; otherwise skip (or fail under CI)."""
    if port_is_open(url):
        return url
    missing_service(f"{name} is not reachable at {url}")


def require_program(program: str, hint: str = "") -> str:
    """The path of `program`; skip (or fail under CI) when it is not installed."""
    path = shutil.which(program)
    if path is None:
        missing_service(f"{program} is not installed{hint}")
    return path
