"""Real inferq processes for integration tests: Celery workers, and a Redis client to watch them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import redis

from inferq import keys
from inferq.redis_connection import connect
from inferq.settings import Settings
from launcher import api_command
from launcher.processes import descendants, redis_answers
from launcher.redis_server import embedded_redis_command
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
#: A worker imports TensorFlow and loads a model before its first heartbeat.
WORKER_START_TIMEOUT_S = 90


def worker_env(redis_url: str, model_dir: Path, queue: str, **settings: object) -> dict[str, str]:
    env = dict(os.environ, REDIS_URL=redis_url, MODEL_DIR=str(model_dir), QUEUE_NAME=queue,
               HEARTBEAT_INTERVAL_S="0.5", PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.update({name.upper(): str(value) for name, value in settings.items()})
    return env


class WorkerProcess:
    """``celery -A worker.main worker`` with the given settings, its output in ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path, *, pool: str = "solo", concurrency: int = 1,
                 command: list[str] | None = None) -> None:
        self.env = env
        self.log_path = log_path
        settings = Settings.from_env(env)
        self.client = connect(settings.redis_url, sentinel_master=settings.redis_sentinel_master)
        command = command or [
            sys.executable, "-m", "celery", "-A", "worker.main", "worker", "--pool", pool,
            "--concurrency", str(concurrency),
            "--hostname", f"{env['QUEUE_NAME']}-{log_path.stem}@%h",
            "--without-mingle", "--without-gossip", "--loglevel", "INFO"]
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def heartbeats(self) -> list[dict]:
        """The live heartbeats of this worker's model-holding processes."""
        pids = {self.process.pid, *descendants(self.process.pid)}
        beats = []
        for name in self.client.zrange(keys.WORKERS, 0, -1):
            record = self.client.get(keys.worker(name.decode()))
            if record is not None and json.loads(record)["pid"] in pids:
                beats.append(json.loads(record))
        return beats

    def wait_serving(self, version: int | None = None, timeout_s: float = WORKER_START_TIMEOUT_S, *,
                     model: str | None = None) -> dict:
        """The heartbeat of a process serving ``version`` (any) of ``model`` (any), once the worker has
        started consuming."""
        def serving() -> dict | None:
            assert self.process.poll() is None, f"worker exited:\n{self.log()}"
            if " ready." not in self.log():
                return None
            for beat in self.heartbeats():
                if any(model in (None, spec["name"]) and version in (None, spec["version"]) for spec in beat["models"]):
                    return beat
            return None
        return wait_for(serving, timeout_s, f"the worker to serve model {model or 'any'} version {version}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes, as a crash would."""
        _kill_tree(self.process)

    def stop(self, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


class ApiProcess:
    """The API as ``make up`` runs it, under the HTTP server ``env``'s API_SERVER names, on ``port``,
    reached at ``host``."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int, command: list[str] | None = None,
                 processes: int = 1, host: str = "127.0.0.1") -> None:
        self.base_url = f"http://{host}:{port}"
        self.log_path = log_path
        env = dict(env, PORT=str(port), API_PROCESSES=str(processes), API_THREADS="8")
        command = command or api_command()
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._answers, 30, "the API to answer")

    def _answers(self) -> bool:
        assert self.process.poll() is None, self.log_path.read_text()
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def kill(self) -> None:
        """SIGKILL the server and its worker processes, as a crash (or the OOM killer) would."""
        _kill_tree(self.process)


class RedisProcess:
    """The embedded Redis as ``make up`` runs it (append-only file in ``data_dir``) on ``port``:
    stopped and started again on the same port and data, its queued work survives."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.command = embedded_redis_command(port, data_dir, persist=True)
        self.client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=10)
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 10) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)

        def answers() -> bool:
            assert self.process.poll() is None, f"Redis on port {self.port} exited ({self.process.returncode})"
            return redis_answers(self.client)
        wait_for(answers, timeout_s, f"Redis to answer on port {self.port}")

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM: Redis writes what its append-only file still lacks, then exits."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def _kill_tree(process: subprocess.Popen) -> None:
    for pid in [*descendants(process.pid), process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(10)

