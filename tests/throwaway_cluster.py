"""A private Redis Cluster the test owns: three masters and three replicas, each on a free
port, so a test can kill a master, watch its replica take over and bring the node back.
Never the shared server on 6379.

Nodes decide a master is down after NODE_TIMEOUT_MS; the replica is promoted a moment later.
Start-up is bounded (every node seeing `cluster_state:ok` and every replica in sync, or
RuntimeError), and every process is killed at the end.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from .services import running_under_ci
from .support import RedisProcesses, wait_for

NODE_TIMEOUT_MS = 1000
START_TIMEOUT = 30.0


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too: a node needs both, so
    its port is at most 55535, below the ephemeral range `free_port` draws from."""
    while True:
        port = random.randint(20000, 30000)
        if _bindable(port) and _bindable(port + 10000):
            return port


def _wait_for(what: str, condition: Any, timeout: float = START_TIMEOUT) -> None:
    wait_for(f"throwaway cluster: {what}", condition, timeout)


class ThrowawayCluster(RedisProcesses):
    def __init__(self, directory: Path, nodes: int = 6) -> None:
        self.directory = directory
        self.ports: list[int] = []
        while len(self.ports) < nodes:
            port = cluster_port()
            if not {port, port + 10000} & {*self.ports, *(taken + 10000 for taken in self.ports)}:
                self.ports.append(port)
        super().__init__()
        #: Masters a healthy cluster has (one more after `add_empty_master`).
        self.master_count = nodes // 2

    @property
    def startup_nodes(self) -> str:
        """CACHE_REDIS_CLUSTER as Flask-Caching spells it: "host:port,host:port"."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    @property
    def bus_url(self) -> str:
        return f"redis+cluster://{self.startup_nodes}/"

    def app_config(self, key_prefix: str) -> dict[str, Any]:
        """The cache settings of an app on this cluster."""
        return {"CACHE_TYPE": "RedisClusterCache", "CACHE_REDIS_CLUSTER": self.startup_nodes,
                "CACHE_KEY_PREFIX": key_prefix}

    def launch(self, port: int) -> None:
        data = self.directory / str(port)
        data.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", str(data / "nodes.conf"),
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "",
             "--appendonly", "no", "--dir", str(data),
             # A replica syncs at once, not after the 5 s a master waits for more of them.
             "--repl-diskless-sync-delay", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        node = self.client(port)
        try:
            _wait_for(f"node {port} answering", node.ping, 10)
        finally:
            node.close()

    def start(self) -> None:
        for port in self.ports:
            self.launch(port)
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, timeout=60, check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]!r}"
                               f" {created.stderr[-2000:]!r}")
        self.wait_until_healthy()

    def wait_until_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Until every running node says `cluster_state:ok`, sees three masters and every
        replica's link to its master is up."""
        try:
            _wait_for("every node in cluster_state:ok with its replicas in sync",
                      self._healthy, timeout)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; the nodes: {self._states()}") from None

    def _states(self) -> str:
        """What each node says of itself, for a start-up that did not finish."""
        states = []
        for port, process in self.processes.items():
            if process.poll() is not None:
                states.append(f"{port} exited ({process.returncode})")
                continue
            node = self.client(port)
            try:
                replication = node.info("replication")
                states.append(f"{port} {node.cluster('info')['cluster_state']} "
                              f"{replication['role']} "
                              f"{replication.get('master_link_status', '')}".strip())
            except (OSError, redis.RedisError) as error:
                states.append(f"{port} unreadable ({error})")
            finally:
                node.close()
        return ", ".join(states)

    def _healthy(self) -> bool:
        masters = set()
        for port in self.processes:
            node = self.client(port)
            try:
                if node.cluster("info")["cluster_state"] != "ok":
                    return False
                replication = node.info("replication")
                if replication["role"] == "master":
                    masters.add(port)
                elif replication.get("master_link_status") != "up":
                    return False
            finally:
                node.close()
        return len(masters) == self.master_count

    def masters(self) -> list[int]:
        """The ports of the running masters that serve slots."""
        ports = []
        for port in self.processes:
            node = self.client(port)
            try:
                if node.info("replication")["role"] == "master":
                    ports.append(port)
            finally:
                node.close()
        return sorted(ports)

    def master_of(self, key: str) -> int:
        """The port of the master serving `key`'s slot now (as a running node sees it)."""
        node = self.client(next(iter(self.processes)))
        try:
            slot = int(node.cluster("keyslot", key))
        finally:
            node.close()
        return self.master_of_slot(slot)

    def add_empty_master(self) -> int:
        """Start one more node and join it to the cluster as a master serving no slots (as
        `redis-cli --cluster add-node` does before a reshard gives it some); returns its port."""
        port = cluster_port()
        self.launch(port)
        known = next(iter(self.ports))
        self._command(port, "CLUSTER", "MEET", "127.0.0.1", known)
        self.ports.append(port)
        self.master_count += 1

        def everyone_knows_it() -> bool:
            return self._command(port, "CLUSTER", "INFO").find(b"cluster_state:ok") >= 0 and all(
                f":{port}@".encode() in self._command(other, "CLUSTER", "NODES")
                for other in self.processes)
        _wait_for(f"node {port} known to every node, and the slots to it", everyone_knows_it, 10)
        return port

    def slot_of(self, key: str) -> int:
        node = self.client(next(iter(self.processes)))
        try:
            return int(node.cluster("keyslot", key))
        finally:
            node.close()

    def move_slot(self, slot: int, target: int, *, batches: int = 20,
                  between: Callable[[], None] = lambda: None) -> int:
        """Reshard `slot` to the master `target` as `redis-cli --cluster reshard` does
        (IMPORTING, MIGRATING, MIGRATE key by key, then SETSLOT NODE everywhere), in at least
        `batches` steps with `between()` after each, so that commands arrive while the slot
        is half moved (some keys on each master: ASK redirections and TRYAGAIN). Returns
        how many keys it moved."""
        source = self.start_moving(slot, target)
        done = moved = 0
        while True:
            moved += self.migrate(slot, source, target, 1)
            done += 1
            between()
            if done >= batches and not self.keys_in_slot(source, slot):
                break
        self.finish_moving(slot, target)
        return moved

    def start_moving(self, slot: int, target: int) -> int:
        """Mark `slot` as moving from its master to `target`; returns the source's port."""
        source = self.master_of_slot(slot)
        if source == target:
            raise ValueError(f"slot {slot} is already on {target}")
        self._command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source))
        self._command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(target))
        return source

    def keys_in_slot(self, port: int, slot: int, count: int = 100) -> list[bytes]:
        return list(self._command(port, "CLUSTER", "GETKEYSINSLOT", slot, count))

    def migrate(self, slot: int, source: int, target: int, count: int,
                keys: list[bytes] | None = None) -> int:
        """MIGRATE `keys` (else up to `count` keys of the slot) from source to target."""
        keys = self.keys_in_slot(source, slot, count) if keys is None else keys
        if keys:
            self._command(source, "MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
        return len(keys)

    def finish_moving(self, slot: int, target: int) -> None:
        """SETSLOT NODE on the target, the source, then every other master."""
        source = self.master_of_slot(slot)
        others = [port for port in self.masters() if port not in (target, source)]
        for port in (target, source, *others):
            self._command(port, "CLUSTER", "SETSLOT", slot, "NODE", self.node_id(target))

    def node_id(self, port: int) -> str:
        return str(self._command(port, "CLUSTER", "MYID").decode())

    def _command(self, port: int, *args: Any) -> Any:
        node = self.client(port)
        try:
            return node.execute_command(*args)
        finally:
            node.close()

    def master_of_slot(self, slot: int) -> int:
        node = self.client(next(iter(self.processes)))
        try:
            for start, end, master, *_ in node.cluster("slots"):
                if int(start) <= slot <= int(end):
                    return int(master[1])
        finally:
            node.close()
        raise RuntimeError(f"no master serves slot {slot}")

    def wait_for_promotion(self, old_port: int, timeout: float = 20.0) -> None:
        """Until a replica of the killed master `old_port` serves its slots and the cluster is
        ok again on every running node."""
        def promoted() -> bool:
            return self._cluster_ok_without(old_port) and len(self.masters()) == 3
        _wait_for("a replica promoted", promoted, timeout)

    def _cluster_ok_without(self, old_port: int) -> bool:
        for port in self.processes:
            node = self.client(port)
            try:
                if node.cluster("info")["cluster_state"] != "ok":
                    return False
            finally:
                node.close()
        return old_port not in self.processes

    def kill_all(self) -> list[int]:
        """Kill every node (the whole cluster down); returns their ports for `relaunch`."""
        ports = sorted(self.processes)
        for port in ports:
            self.kill(port)
        return ports

    def relaunch(self, ports: list[int]) -> None:
        """Start killed nodes again on their own nodes.conf (they rejoin as they were; their
        data is gone: nothing is saved) and wait until the cluster is healthy."""
        for port in ports:
            self.launch(port)
        self.wait_until_healthy()



def _cluster(directory: Path) -> Iterator[ThrowawayCluster]:
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed"
        if running_under_ci():
            pytest.fail(f"{reason}, and CI=true makes a missing service a failure", pytrace=False)
        pytest.skip(reason)
    cluster = ThrowawayCluster(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def throwaway_cluster(tmp_path: Path) -> Iterator[ThrowawayCluster]:
    """A cluster of this test's own (for tests that kill a node)."""
    yield from _cluster(tmp_path)


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayCluster]:
    """One cluster for the tests that never kill a node (each uses a prefix of its own)."""
    yield from _cluster(tmp_path_factory.mktemp("cluster"))
