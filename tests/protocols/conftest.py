"""Protocol tests: fast ones on the API tests' stand-in worker, and real clients against a real worker.

The fast ones use the API tests' stand-in worker (``tests.support.stand_in``). The real
setup is one worker process per test module (a start costs seconds) on a Redis server of its own,
and the app served over HTTP from a thread, for clients that open sockets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import NamedTuple

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from werkzeug.serving import make_server

from api.app import create_app
from inferq.jobs import Outcome
from inferq.settings import Settings
from launcher import grpc_command
from launcher.processes import free_port
from tests.support.models import build_model
from tests.support.processes import REPO, WorkerProcess, worker_env
from tests.support.specs import go_server_spec
from tests.support.stand_in import STAND_IN_VERSION
from tests.support.waiting import wait_for

MODEL_NAME = "mnist"
#: A model built as the original Go server loaded it: no signature, labels only.
GO_SERVER_SPEC = go_server_spec(STAND_IN_VERSION)


class WithoutProbabilities:
    """Wraps the stand-in's job store so that its answers are a labels-only model's, as the seed's."""

    def __init__(self, store) -> None:
        self.store = store

    def start(self, job_ids):
        return self.store.start(job_ids)

    def finish(self, finished) -> None:
        self.store.finish([dataclasses.replace(job, outcome=Outcome.done(_without_probabilities(job.outcome.answer)))
                           for job in finished])


def _without_probabilities(answer: dict) -> dict:
    return {**answer, "outputs": {name: values for name, values in answer["outputs"].items()
                                  if name != "probabilities"}}


@pytest.fixture
def labels_only():
    def make(worker) -> None:
        worker.store = WithoutProbabilities(worker.store)
    return make


# --- a real worker, a real Redis, real HTTP ---

#: The real worker's model answers this label for every image, at this version.
REAL_LABEL = 7
REAL_VERSION = 2


@pytest.fixture(scope="module")
def real_worker(tmp_path_factory, own_redis_url) -> Iterator[WorkerProcess]:
    root = tmp_path_factory.mktemp("protocol-worker")
    build_model(root / "models", REAL_VERSION, label=REAL_LABEL)
    worker = WorkerProcess(worker_env(own_redis_url, root / "models", "protocols"), root / "worker.log")
    try:
        worker.wait_serving(version=REAL_VERSION)
        yield worker
    finally:
        worker.stop()


@contextlib.contextmanager
def served_over_http(settings: Settings) -> Iterator[str]:
    """``host:port`` of an app built with ``settings``, served over HTTP from a thread."""
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        app.extensions["inferq"].replies.close()


@contextlib.contextmanager
def served_over_grpc(app, settings: Settings | None = None) -> Iterator[str]:
    """``host:port`` of the gRPC front end on ``app``'s runtime (``settings``: the app's)."""
    from api.grpc.server import GrpcServer

    server = GrpcServer(app, settings or app.extensions["inferq"].settings, "127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop()


#: The API key the gRPC front end's own process (``grpc_process``) asks for.
API_KEY = "grpc-s3cret"
KEY = {"authorization": f"Bearer {API_KEY}"}


def health(address: str, service: str = "") -> int | None:
    """grpc.health.v1's answer for ``service``; None while nothing answers."""
    with grpc.insecure_channel(address) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                             timeout=1).status
        except grpc.RpcError:
            return None


class GrpcProcess(NamedTuple):
    process: subprocess.Popen
    address: str
    metrics_port: int


@pytest.fixture(scope="module")
def grpc_process(real_worker, own_redis_url, tmp_path_factory) -> Iterator[GrpcProcess]:
    """The gRPC front end's own process (``python -m api.grpc``, as ``make up`` starts it: GRPC_PROCESSES
    servers) on the real worker, asking for API_KEY, its metrics on a port of its own."""
    port, metrics_port = free_port(), free_port()
    log_path = tmp_path_factory.mktemp("grpc") / "grpc.log"
    env = dict(os.environ, REDIS_URL=own_redis_url, QUEUE_NAME="protocols", HEARTBEAT_INTERVAL_S="0.5",
               GRPC_PORT=str(port), API_KEY=API_KEY, PYTHONUNBUFFERED="1", GRPC_METRICS_PORT=str(metrics_port))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(grpc_command(), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"

    def serving() -> bool:
        assert process.poll() is None, log_path.read_text()
        return health(address, "inference.GRPCInferenceService") == health_pb2.HealthCheckResponse.SERVING

    try:
        wait_for(serving, 30, "the gRPC front end to serve")
        yield GrpcProcess(process, address, metrics_port)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


@pytest.fixture(scope="module")
def server_address(real_worker, own_redis_url) -> Iterator[str]:
    """``host:port`` of the app, served over HTTP from a thread, wired to the real worker."""
    settings = Settings(redis_url=own_redis_url, queue_name="protocols", heartbeat_interval_s=0.5)
    with served_over_http(settings) as address:
        yield address

