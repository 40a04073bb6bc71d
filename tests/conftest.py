"""Fixtures for the whole suite: images, settings, fake and real Redis."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import numpy as np
import pytest
import redis
from PIL import Image

from inferq.redis_connection import connect
from launcher.processes import free_port
from launcher.redis_server import embedded_redis
from trainer.data import load_idx_split

pytest_plugins = ["tests.support.stand_in"]

REPO = Path(__file__).resolve().parent.parent
MNIST_DIR = Path(os.environ.get("TEST_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))
#: The real Redis the tests use where it answers (each test lends a database of it); TEST_REDIS_URL
#: names another, so that two suites on one machine keep out of each other's databases.
LOCAL_REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture(scope="session")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    """The official MNIST test split: images ``[10000, 28, 28]`` and labels."""
    split = load_idx_split(MNIST_DIR, "testing")
    return split.images.reshape(-1, 28, 28), split.labels


@pytest.fixture(scope="session")
def mnist_train_sample() -> tuple[np.ndarray, np.ndarray]:
    split = load_idx_split(MNIST_DIR, "training")
    return split.images[:5000].reshape(-1, 28, 28), split.labels[:5000]


def png_bytes(pixels: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    image = Image.fromarray(pixels)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def digit_104(mnist_test: tuple[np.ndarray, np.ndarray]) -> bytes:
    """``mnist_png/testing/9/104.png``, the seed's example: test image 104, a 9."""
    images, labels = mnist_test
    assert labels[104] == 9
    return png_bytes(images[104])


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory) -> Path:
    """The real model, trained once per test session with the shipped config/model.json."""
    from trainer.params import load_params
    from trainer.train import train_and_export

    params = dataclasses.replace(
        load_params(REPO / "config" / "model.json", {}),
        save_path=str(tmp_path_factory.mktemp("trained-models")), data_path=str(MNIST_DIR), download=False,
    )
    return train_and_export(params, verbose=False).parent


@pytest.fixture
def fake_redis() -> redis.Redis:
    return fakeredis.FakeRedis()


@pytest.fixture
def unreachable_redis() -> redis.Redis:
    """A client, made as inferq makes them, for a port where no Redis listens."""
    return connect(f"redis://127.0.0.1:{free_port()}/0")


@pytest.fixture
def unreachable_sentinels() -> redis.Redis:
    """A client, made as inferq makes them, for Sentinels on ports where none listens."""
    return connect(f"sentinel://127.0.0.1:{free_port()};sentinel://127.0.0.1:{free_port()}",
                   sentinel_master="mymaster")




@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[str]:
    """A real Redis, as ``redis://host:port``: the local one where it answers, else an embedded one."""
    try:
        redis.Redis.from_url(LOCAL_REDIS, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pass
    else:
        yield LOCAL_REDIS
        return
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url.removesuffix("/0")


@pytest.fixture(scope="module")
def own_redis_url(tmp_path_factory) -> Iterator[str]:
    """A Redis server of this module's own, for modules whose long-lived worker must not share one.

    On the shared Redis, other integration tests flush and fill every database in turn, and a
    flush under a live worker loses its queue and heartbeat.
    """
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


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
