"""The servers a benchmark run measures: inferq (workers + API) and the seed's architecture, each
under the HTTP server (API_SERVER) asked for; and the peer users would pick instead, NVIDIA PyTriton
over KServe v2 (``bench.peers``).

They share one embedded Redis (or REDIS_URL's) and are started and stopped as plain processes,
with the commands ``make up`` uses. inferq serves the one model measured from a model repository
of its own, as ``make up`` serves MODEL_REPOSITORY: the model's directory of versions, named there
as the default model (``SERVED_MODEL``), so that ``POST /recognize`` answers with it whatever the
model is; the reference server loads the same directory's newest SavedModel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench import peers
from bench.bodies import MULTIPART
from inferq.settings import Settings
from launcher import api_command, grpc_command, grpc_serving, worker_command
from launcher.processes import Child, descendants, free_port
from launcher.redis_server import embedded_redis

START_TIMEOUT_S = 180.0
#: The name the model measured is served under: the default model (DEFAULT_MODEL), the one
#: ``POST /recognize`` and ``POST /jobs`` answer with.
SERVED_MODEL = Settings().default_model


@contextlib.contextmanager
def redis_server(run_dir: Path) -> Iterator[str]:
    """REDIS_URL when set, else an embedded Redis for the run."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    data_dir = run_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    with embedded_redis(data_dir) as url:
        yield url


@dataclasses.dataclass
class Running:
    base_url: str
    children: list[Child]
    #: ``host:port`` of the gRPC front end, where it was started.
    grpc_address: str | None = None

    def pids(self) -> dict[str, list[int]]:
        """Process ids by role, with the HTTP server's and the workers' own children."""
        found: dict[str, list[int]] = {}
        for child in self.children:
            assert child.process is not None
            role = child.name if child.name in ("api", "grpc") else "worker"
            found.setdefault(role, []).extend([child.process.pid, *descendants(child.process.pid)])
        return found


@contextlib.contextmanager
def serving_repository(model_dir: str | Path) -> Iterator[Path]:
    """A model repository holding ``model_dir`` (a directory of versions) alone, as SERVED_MODEL: a
    temporary directory with a link to it, removed afterwards (the model is left alone)."""
    root = Path(tempfile.mkdtemp(prefix="inferq-bench-repository-"))
    link = root / SERVED_MODEL
    try:
        link.symlink_to(Path(model_dir).resolve(), target_is_directory=True)
        yield root
    finally:
        link.unlink(missing_ok=True)
        root.rmdir()


def _serving_env(repository: Path, **settings: object) -> dict[str, str]:
    """The environment of inferq's processes serving ``repository``: the settings that choose what
    is served are set here, whatever the caller's environment says (an empty MODEL_DIR is unset)."""
    return _env(MODEL_REPOSITORY=repository, MODEL_DIR="", WORKER_MODELS="", DEFAULT_MODEL=SERVED_MODEL,
                HEARTBEAT_INTERVAL_S=0.5, LOG_LEVEL="WARNING", **settings)


@contextlib.contextmanager
def inferq_processes(redis_url: str, model_dir: str, *, workers: int = 1, grpc: bool = False,
                     **settings: object) -> Iterator[Running]:
    """Workers and the API on a free port serving ``model_dir`` as SERVED_MODEL, once ready; ``grpc``:
    and the gRPC front end, on another."""
    port, grpc_port = free_port(), free_port()
    with serving_repository(model_dir) as repository:
        # A free metrics port too: the default (8002) may be a running `make up`'s or another bench's.
        env = _serving_env(repository, REDIS_URL=redis_url, PORT=port, GRPC_PORT=grpc_port,
                           GRPC_METRICS_PORT=free_port(), **settings)
        config = Settings.from_env(env)
        children = [Child(f"worker {i}", worker_command(config, i), env) for i in range(workers)]
        children.append(Child("api", api_command(), env))
        if grpc:
            children.append(Child("grpc", grpc_command(), env))
        base = f"http://127.0.0.1:{port}"
        try:
            for child in children:
                child.start()
            _wait(lambda: _answers(f"{base}/readyz") and (not grpc or grpc_serving(config)), START_TIMEOUT_S,
                  "inferq to be ready", children)
            yield Running(base, children, f"127.0.0.1:{grpc_port}" if grpc else None)
        finally:
            _stop(children)


@contextlib.contextmanager
def inferq(redis_url: str, model_dir: str, **settings: object) -> Iterator[str]:
    """Workers and the API on a free port; yields the API's base URL once it is ready."""
    with inferq_processes(redis_url, model_dir, **settings) as running:
        yield running.base_url


@contextlib.contextmanager
def workers_only(redis_url: str, model_dir: str, *, workers: int = 1, **settings: object) -> Iterator[None]:
    """``workers`` worker processes (solo pool, as ``make up`` starts them) serving ``model_dir`` as
    SERVED_MODEL, and no API."""
    with serving_repository(model_dir) as repository:
        env = _serving_env(repository, REDIS_URL=redis_url, **settings)
        children = [Child(f"worker {i}", worker_command(Settings.from_env(env), i), env) for i in range(workers)]
        try:
            for child in children:
                child.start()
            yield
        finally:
            _stop(children)


@contextlib.contextmanager
def seed_reference(model_dir: str, probe_body: bytes, server: str = "gunicorn") -> Iterator[str]:
    """The seed's architecture: Flask + the SavedModel, one session call a request, 2 x 8 threads,
    under ``server``: the HTTP server inferq is measured under, so that their ratio compares the
    architectures rather than the servers."""
    port = free_port()
    env = _env(MODEL_DIR=Path(model_dir).resolve())
    child = Child("seed reference", _seed_command(server, port), env)
    base = f"http://127.0.0.1:{port}"
    try:
        child.start()
        _wait(lambda: _recognizes(f"{base}/recognize", probe_body), START_TIMEOUT_S, "the reference server", [child])
        yield base
    finally:
        _stop([child])


@dataclasses.dataclass
class Peer:
    """A peer server, answering KServe v2 over HTTP (``base_url``) and gRPC (``grpc_address``)."""

    base_url: str
    grpc_address: str
    child: Child

    def pids(self) -> dict[str, list[int]]:
        """Its processes (Triton's server, PyTriton's proxy and the model's), as one role."""
        assert self.child.process is not None
        pid = self.child.process.pid
        return {"server": [pid, *descendants(pid)]}


@contextlib.contextmanager
def pytriton_reference(model_dir: str, interpreter: Path, *, max_batch_size: int, max_batch_wait_ms: float,
                       log_file: Path | None = None) -> Iterator[Peer]:
    """NVIDIA PyTriton (``bench/pytriton_server.py``, in its own venv: ``bench.peers``) serving
    ``model_dir``'s newest SavedModel as SERVED_MODEL, batching as inferq's settings say; once the
    model is ready. ``log_file``: where Triton's server logs, rather than the run's output."""
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    command = peers.server_command(interpreter, model_dir, http_port=http_port, grpc_port=grpc_port,
                                   metrics_port=metrics_port, max_batch_size=max_batch_size,
                                   max_batch_wait_ms=max_batch_wait_ms, name=SERVED_MODEL, log_file=log_file)
    child = Child("pytriton", command, peers.server_env())
    base = f"http://127.0.0.1:{http_port}"
    try:
        child.start()
        _wait(lambda: _answers(f"{base}/v2/models/{SERVED_MODEL}/ready"), START_TIMEOUT_S, "PyTriton", [child])
        yield Peer(base, f"127.0.0.1:{grpc_port}", child)
    finally:
        _stop([child])


def _seed_command(server: str, port: int) -> list[str]:
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "wsgi", "--factory", "--http", "1",
                "--workers", "2", "--blocking-threads", "8", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "bench.seed_server:create_app"]
    return [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "8", "--worker-class", "gthread",
            "--bind", f"127.0.0.1:{port}", "--no-control-socket", "--log-level", "warning",
            "bench.seed_server:create_app()"]


def _env(**settings: object) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.update({name: str(value) for name, value in settings.items()})
    return env


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _recognizes(url: str, body: bytes) -> bool:
    request = urllib.request.Request(url, data=body, headers=MULTIPART)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait(condition, timeout_s: float, what: str, children: list[Child]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        for child in children:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _stop(children: list[Child]) -> None:
    # Last started, first stopped, each before the next, as ``make up`` stops: the API answers the
    # sync requests it holds while the workers still run, instead of waiting SYNC_TIMEOUT_S for them.
    deadline = time.monotonic() + 30
    for child in reversed(children):
        child.terminate()
        child.wait_stopped(deadline)
