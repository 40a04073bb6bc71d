"""A pytest plugin for API tests: apps built with their own settings on fakeredis, and a stand-in for
Celery and a worker that answers each message as it is sent. Loaded by the root conftest."""

from __future__ import annotations

import dataclasses

import numpy as np
import orjson
import pytest
import redis
from kombu.exceptions import OperationalError

from api import create_app
from inferq import messages
from inferq.jobs import Finished, JobStore, Outcome
from inferq.model_contract import N_INPUT
from inferq.settings import Settings

#: The list the stand-in broker queues messages on.
QUEUE = "inferq"


def fake_label(pixels: np.ndarray) -> int:
    """The stand-in worker's answer for one image: a deterministic function of its pixels."""
    return int(pixels.astype(np.int64).sum() % 10)


@dataclasses.dataclass
class InlineWorker:
    """Takes the place of the broker and a worker: answers each message as soon as it is queued.

    Messages go onto a Redis list, pushed by the API's own function when it passes one (as the
    real broker channel lets it) or else by this stand-in, and are taken off it and answered.
    """

    store: JobStore
    redis: redis.Redis
    answer: bool = True
    model_error: str | None = None
    broker_down: bool = False
    sent: list[messages.Job] = dataclasses.field(default_factory=list)

    def publish(self, body: dict, *, images: int, description: str, push=None) -> None:
        if self.broker_down:
            raise OperationalError("Error 111 connecting to localhost:6379. Connection refused.")
        assert images == messages.image_count(messages.decode(body))
        message = orjson.dumps(body).decode()
        if push is not None:
            push(QUEUE, message)
        else:
            self.redis.lpush(QUEUE, message)
        while (raw := self.redis.rpop(QUEUE)) is not None:
            self._run(messages.decode(orjson.loads(raw)))

    def _run(self, jobs: list[messages.Job]) -> None:
        self.sent += jobs
        if not self.answer:
            return
        with self.store.running([job.job_id for job in jobs]):
            pass
        self.store.finish([Finished(job.job_id, job.count, job.reply_to, self._outcome(job)) for job in jobs])

    def _outcome(self, job: messages.Job) -> Outcome:
        if self.model_error:
            return Outcome.failed(self.model_error)
        pixels = np.frombuffer(job.pixels, np.uint8).reshape(-1, N_INPUT)
        return Outcome.done([
            {"label": fake_label(row), "probabilities": [0.1] * 10, "model_version": 3} for row in pixels
        ])


@pytest.fixture
def make_app(fake_redis):
    def make(redis_client=None, **overrides):
        settings = Settings(**{"sync_timeout_s": 0.3, **overrides})
        client = redis_client or fake_redis
        worker = InlineWorker(JobStore(client, result_ttl_s=settings.result_ttl_s,
                                       max_queue_depth=settings.max_queue_depth), client)
        return create_app(settings, redis_client=client, publisher=worker), worker
    return make


@pytest.fixture
def app_and_worker(make_app):
    return make_app()


@pytest.fixture
def client(app_and_worker):
    return app_and_worker[0].test_client()


@pytest.fixture
def worker(app_and_worker):
    return app_and_worker[1]
