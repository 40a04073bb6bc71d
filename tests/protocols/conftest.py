"""Protocol tests: fast ones on the API tests' stand-in worker, and real clients against a real worker.

The fast ones use the API tests' stand-in worker (``tests.support.stand_in``). The real
setup is one worker process per test module (a start costs seconds) on a Redis server of its own,
and the app served over HTTP from a thread, for clients that open sockets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from api import create_app
from inferq.jobs import Outcome
from inferq.settings import Settings
from tests.support.models import build_model
from tests.support.processes import WorkerProcess, worker_env
from tests.support.specs import go_server_spec
from tests.support.stand_in import STAND_IN_VERSION

MODEL_NAME = "mnist"
#: A model built as the original Go server loaded it: no signature, labels only.
SEED_SPEC = go_server_spec(STAND_IN_VERSION)


class WithoutProbabilities:
    """Wraps the stand-in's job store so that its answers are a labels-only model's, as the seed's."""

    def __init__(self, store) -> None:
        self.store = store

    def running(self, job_ids):
        return self.store.running(job_ids)

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


@pytest.fixture(scope="module")
def server_address(real_worker, own_redis_url) -> Iterator[str]:
    """``host:port`` of the app, served over HTTP from a thread, wired to the real worker."""
    settings = Settings(redis_url=own_redis_url, queue_name="protocols", heartbeat_interval_s=0.5)
    with served_over_http(settings) as address:
        yield address

