"""A private Redis Sentinel deployment the test owns: a primary, one replica and three
sentinels (quorum 2), each on a free port, so a test can kill the primary and watch the
sentinels promote the replica. Never the shared server on 6379.

The sentinels notice a dead primary after DOWN_AFTER_MS and fail over within a second or
two. Start-up is bounded (the replica in sync, every sentinel knowing the replica and the two
other sentinels, or RuntimeError), and every process is killed at the end.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from .services import require_program
from .support import RedisProcesses, free_port, wait_for

MASTER_NAME = "quart_app_test"
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 2000
START_TIMEOUT = 20.0


def _wait_for(what: str, condition: Any, timeout: float = START_TIMEOUT) -> None:
    wait_for(f"throwaway sentinel set: {what}", condition, timeout)


class ThrowawaySentinels(RedisProcesses):
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        super().__init__()

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.sentinel_ports]

    def app_config(self, key_prefix: str) -> dict[str, Any]:
        """The cache settings of an app on this deployment."""
        return {"CACHE_TYPE": "RedisSentinelCache",
                "CACHE_REDIS_SENTINELS": [f"127.0.0.1:{port}" for port in self.sentinel_ports],
                "CACHE_REDIS_SENTINEL_MASTER": MASTER_NAME, "CACHE_KEY_PREFIX": key_prefix}

    def _server(self, port: int, *extra: str) -> None:
        data = self.directory / str(port)
        data.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(data),
             # A replica syncs at once, not after the 5 s a master waits for more of them.
             "--repl-diskless-sync-delay", "0", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def _sentinel(self, port: int) -> None:
        data = self.directory / f"sentinel-{port}"
        data.mkdir(exist_ok=True)
        conf = data / "sentinel.conf"  # sentinels rewrite their file, so each has its own
        # Each is told the replica and the other sentinels (their ids are made up here), as
        # a sentinel's own file records them: discovering them takes seconds otherwise.
        known = "".join(
            f"sentinel known-sentinel {MASTER_NAME} 127.0.0.1 {other} {self._id(other)}\n"
            for other in self.sentinel_ports if other != port)
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {data}\n"
            f"sentinel myid {self._id(port)}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            f"sentinel known-replica {MASTER_NAME} 127.0.0.1 {self.replica_port}\n{known}"
        )
        self.processes[port] = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    @staticmethod
    def _id(port: int) -> str:
        return f"{port:040x}"

    def start(self) -> None:
        self._server(self.primary_port)
        self._server(self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        replica = self.client(self.replica_port)
        _wait_for("the replica in sync", lambda: replica.info("replication").get(
            "master_link_status") == "up")
        replica.close()
        for port in self.sentinel_ports:
            self._sentinel(port)
        for port in self.sentinel_ports:
            sentinel = self.client(port)
            _wait_for("every sentinel seeing the replica and the other sentinels",
                      functools.partial(self._ready, sentinel))
            sentinel.close()

    @staticmethod
    def _ready(sentinel: redis.Redis) -> bool:
        state = sentinel.sentinel_master(MASTER_NAME)
        return bool(state["num-slaves"] >= 1 and state["num-other-sentinels"] >= 2)

    def master_port(self) -> int:
        """The port the sentinels name as master now."""
        sentinel = self.client(self.sentinel_ports[0])
        try:
            return int(sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)[1])
        finally:
            sentinel.close()

    def wait_for_promotion(self, old_port: int, timeout: float = 15.0) -> int:
        """Until every sentinel names a master other than `old_port` that it sees up (what a
        client asks before it connects), and that server says it is master."""
        def promoted() -> bool:
            states = []
            for port in self.sentinel_ports:
                sentinel = self.client(port)
                try:
                    states.append(sentinel.sentinel_master(MASTER_NAME))
                finally:
                    sentinel.close()
            if any(state["port"] == old_port or not state["is_master"] or state["is_sdown"]
                   or state["is_odown"] for state in states):
                return False
            server = self.client(states[0]["port"])
            try:
                return bool(server.info("replication")["role"] == "master")
            finally:
                server.close()
        _wait_for("a replica promoted", promoted, timeout)
        return self.master_port()



@pytest.fixture
def throwaway_sentinels(tmp_path: Path) -> Iterator[ThrowawaySentinels]:
    yield from _sentinels(tmp_path)


def _sentinels(directory: Path) -> Iterator[ThrowawaySentinels]:
    require_program("redis-server")
    deployment = ThrowawaySentinels(directory)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def shared_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawaySentinels]:
    """One deployment for a module's tests that never kill a server."""
    yield from _sentinels(tmp_path_factory.mktemp("sentinels"))
