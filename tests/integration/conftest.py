"""Integration fixtures: real Redis databases, real worker processes, apps wired to them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from inferq.settings import Settings
from tests.support.go_server_model import build_go_server_model
from tests.support.processes import WorkerProcess, worker_env


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def go_server_model_dir(tmp_path_factory, mnist_train_sample) -> Path:
    root = tmp_path_factory.mktemp("go-server-models")
    build_go_server_model(root / "1", *mnist_train_sample)
    return root


@pytest.fixture
def start_worker(tmp_path, redis_url) -> Iterator:
    started: list[WorkerProcess] = []

    def start(model_dir: Path, *, pool: str = "solo", concurrency: int = 1, wait: bool = True,
              **settings: object) -> WorkerProcess:
        env = worker_env(redis_url, model_dir, "q", **settings)
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log", pool=pool, concurrency=concurrency)
        started.append(worker)
        if wait:
            worker.wait_serving()
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def make_client(redis_url) -> Iterator:
    apps = []

    def make(**settings: object):
        app = create_app(Settings(redis_url=redis_url, queue_name="q", heartbeat_interval_s=0.5, **settings))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["inferq"].replies.close()
        app.extensions["inferq"].events.close()
