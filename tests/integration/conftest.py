"""Integration fixtures: real Redis databases, real worker processes, apps wired to them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from api import create_app
from inferq.settings import Settings
from tests.support.processes import WorkerProcess, worker_env
from tests.support.seed_model import build_seed_model


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


class DatabasePool:
    """Databases 1..15 of the test Redis, each lent to one test (or module) at a time, empty.

    Database 0 is left to whoever else uses the local Redis.
    """

    def __init__(self, server: str) -> None:
        self.server = server
        self.free = list(range(1, 16))

    @contextlib.contextmanager
    def lend(self) -> Iterator[str]:
        number = self.free.pop(0)
        url = f"{self.server}/{number}"
        redis.Redis.from_url(url).flushdb()
        try:
            yield url
        finally:
            self.free.append(number)


@pytest.fixture(scope="session")
def redis_databases(redis_server) -> DatabasePool:
    return DatabasePool(redis_server)


@pytest.fixture
def redis_url(redis_databases) -> Iterator[str]:
    """A Redis database of this test's own, empty."""
    with redis_databases.lend() as url:
        yield url


@pytest.fixture(scope="session")
def seed_model_dir(tmp_path_factory, mnist_train_sample) -> Path:
    root = tmp_path_factory.mktemp("seed-models")
    build_seed_model(root / "1", *mnist_train_sample)
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
