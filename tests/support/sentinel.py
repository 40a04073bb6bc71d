"""A Redis primary, one replica and three Sentinels watching them, all on 127.0.0.1: the system's
``redis-server`` (the embedded one has no Sentinel), with failover settings quick enough for a test.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from launcher.processes import free_port, redis_answers
from tests.support.waiting import wait_for

MASTER = "mymaster"
#: A Sentinel votes a master down after this long without an answer ...
DOWN_AFTER_MS = 500
#: ... and a failover that stalls is tried again after this long.
FAILOVER_TIMEOUT_MS = 2000


class SentinelGroup:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.primary_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        """REDIS_URL for this group, as inferq and kombu read it."""
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> None:
        self._server("primary", self.primary_port)
        self._server("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        replica = self.client(self.replica_port)
        wait_for(lambda: replica.info("replication").get("master_link_status") == "up", 10, "the replica to sync")
        # Started after the replica is in sync: a Sentinel learns of replicas from the master's INFO,
        # which it reads at once on connecting and then only every ten seconds.
        for index, port in enumerate(self.sentinel_ports):
            config = self.directory / f"sentinel-{index}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n")
            self._start(f"sentinel-{index}", [str(config), "--sentinel"])
        wait_for(self._watching, 15, "every Sentinel to know the replica and the other Sentinels")

    def _server(self, name: str, port: int, *extra: str) -> None:
        self._start(name, ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                           "--dir", str(self.directory), "--repl-diskless-sync-delay", "0", *extra])
        wait_for(lambda: redis_answers(self.client(port)), 10, f"the {name} Redis to answer")

    def _start(self, name: str, arguments: list[str]) -> None:
        with open(self.directory / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(["redis-server", *arguments], stdout=log, stderr=subprocess.STDOUT)

    def _watching(self) -> bool:
        for port in self.sentinel_ports:
            try:
                state = self.client(port).sentinel_master(MASTER)
            except redis.RedisError:
                return False
            if state["num-slaves"] != 1 or state["num-other-sentinels"] != 2:
                return False
        return True

    @staticmethod
    def client(port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=2)

    def master_port(self) -> int | None:
        """The master's port as the Sentinels agree on it; None while they disagree or do not answer."""
        ports = set()
        for port in self.sentinel_ports:
            try:
                address = self.client(port).sentinel_get_master_addr_by_name(MASTER)
            except redis.RedisError:
                return None
            ports.add(int(address[1]) if address else None)
        return ports.pop() if len(ports) == 1 else None

    def kill_primary(self) -> None:
        """SIGKILL the primary, as a crash of its machine would end it."""
        self.processes["primary"].send_signal(signal.SIGKILL)
        self.processes["primary"].wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def sentinel_group(directory: Path) -> Iterator[SentinelGroup]:
    """A started group, stopped when the block ends; the test is skipped where there is no redis-server."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs the system's redis-server (apt-get install redis-server) for Redis and its Sentinels")
    group = SentinelGroup(directory)
    try:
        group.start()
        yield group
    finally:
        group.stop()
