"""A pytest plugin for API tests: apps built with their own settings on fakeredis, and a stand-in for
a worker that answers each message as it is queued. Loaded by the root conftest.

The stand-in answers every item at the version the job asked for, else the newest its model's
catalog entry has (for MNIST, by default :data:`STAND_IN_VERSION`): ``labels`` with
:func:`fake_label`, ``probabilities`` with 0.1 each, a string output with empty strings, any other
output with zeros of its shape, unless the test set that output's values (``InlineWorker.outputs``).

The routes know models only from the catalog and heartbeats: ``app_and_worker`` (and so ``client``
and ``worker``) comes with the stand-in's heartbeat for MNIST; ``make_app`` without one, and
``serve`` publishes more.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence

import numpy as np
import orjson
import pytest
import redis

from api.app import create_app
from inferq import keys, messages, priorities
from inferq.catalog import ModelCatalog
from inferq.jobs import Finished, JobStore, Outcome
from inferq.model_spec import ModelSpec
from inferq.settings import Settings
from inferq.worker_registry import WorkerRegistry, WorkerStatus
from tests.support.specs import mnist_spec
from worker.metrics import WorkerMetrics

#: The API's answer, with a 503, whenever Redis is out of reach.
BROKER_UNREACHABLE = {"error": "the broker (Redis) does not answer; try again shortly", "reason": "broker"}

#: The queues the API pushes the default model's messages onto, with default settings, in the order
#: workers take them.
QUEUES = priorities.queues(Settings().model_queue(Settings().default_model))


def model_queues(client: redis.Redis) -> list[str]:
    """Every catalogued model's queues, interactive ones first."""
    names = [*ModelCatalog(client).models(), Settings().default_model]
    return sorted({queue for name in names for queue in priorities.queues(Settings().model_queue(name))},
                  key=lambda queue: (priorities.rank(queue), queue))


#: The model version the stand-in answers with, and its heartbeat says it serves.
STAND_IN_VERSION = 3


def fake_label(pixels: np.ndarray) -> int:
    """The stand-in worker's answer for one image: a deterministic function of its pixels (any value
    of the input's type: NaN and infinities count as 0)."""
    return int(np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0).astype(np.int64).sum() % 10)


@dataclasses.dataclass
class InlineWorker:
    """Takes the place of a worker: answers each message as soon as it is queued (``take_queued``).

    ``store`` is what it records outcomes in; ``broker_down`` makes the API's Redis calls that
    queue work fail, as an unreachable Redis would.
    """

    store: JobStore
    redis: redis.Redis
    answer: bool = True
    model_error: str | None = None
    #: Answer every job as expired, as a worker does once its deadline has passed.
    expire: bool = False
    broker_down: bool = False
    #: Answer every job at this version, whatever it asked for: a worker still on another version.
    version: int | None = None
    #: Each output's values for a job, by output name, in place of the stand-in's own (a test's model).
    outputs: dict[str, Callable[[messages.JobInput], object]] = dataclasses.field(default_factory=dict)
    sent: list[messages.JobInput] = dataclasses.field(default_factory=list)
    #: The model of each job in ``sent``.
    models: list[str] = dataclasses.field(default_factory=list)
    #: The jobs whose inputs came stored beside their message, not in it.
    stored: list[str] = dataclasses.field(default_factory=list)

    def take_queued(self) -> None:
        """Answer every queued message, interactive ones first, as a worker takes them."""
        # Each queue's own list, then its tenants' lists (inferq.broker).
        queues = [listed for queue in model_queues(self.redis)
                  for listed in (queue, *sorted(key.decode() for key in self.redis.keys(f"{queue}@*")))]
        while (raw := next(filter(None, (self.redis.rpop(queue) for queue in queues)), None)) is not None:
            envelope = orjson.loads(raw)
            assert envelope["headers"]["task"] == messages.TASK_NAME
            args, _kwargs, _embed = orjson.loads(envelope["body"])
            model, jobs = messages.decode(args[0])
            # As a worker does: the inputs that travel beside the message are read, then deleted.
            stored = [job.job_id for job in jobs if job.stored]
            self.stored += stored
            if stored:
                jobs = [job.with_stored(inputs) for job, inputs in
                        zip(jobs, self.store.stored_inputs([job.job_id for job in jobs]), strict=True)]
                self.redis.delete(*map(keys.job_inputs, stored))
            assert envelope["headers"][messages.IMAGES_HEADER] == messages.image_count(jobs)
            assert envelope["headers"][messages.MODEL_HEADER] == model
            self._run(model, jobs)

    def _run(self, model: str, jobs: list[messages.JobInput]) -> None:
        self.sent += jobs
        self.models += [model] * len(jobs)
        if not self.answer:
            return
        self.store.start([job.job_id for job in jobs])
        specs = ModelCatalog(self.redis).models()[model]
        self.store.finish([Finished(job.job_id, job.count, model, job.priority, job.reply_to,
                                    self._outcome(job, specs))
                           for job in jobs])

    def _outcome(self, job: messages.JobInput, specs: list[ModelSpec]) -> Outcome:
        if self.expire:
            return Outcome.expired("its deadline passed 0.100 s before a worker could run it; it was not run")
        if self.model_error:
            return Outcome.failed(self.model_error)
        version = self.version if self.version is not None else job.version
        spec = specs[-1] if version is None else next(
            (spec for spec in specs if spec.version == version), dataclasses.replace(specs[-1], version=version))
        first = next(iter(job.inputs.values()))
        rows = first.reshape(len(first), -1)
        outputs = {}
        for tensor in spec.outputs:
            if tensor.name in self.outputs:
                outputs[tensor.name] = self.outputs[tensor.name](job)
            elif tensor.name == "labels":
                outputs[tensor.name] = np.array([fake_label(row) for row in rows], np.int64)
            elif tensor.name == "probabilities":
                outputs[tensor.name] = np.full((len(rows), *[max(size, 1) for size in tensor.shape[1:]]), 0.1,
                                               tensor.dtype)
            elif tensor.dtype == "string":
                outputs[tensor.name] = [""] * len(rows)
            else:
                outputs[tensor.name] = np.zeros((len(rows), *[max(size, 1) for size in tensor.shape[1:]]),
                                                tensor.dtype)
        return Outcome.done({"model_version": spec.version, "outputs": outputs})


class StandInStore(JobStore):
    """The API's job store, with the stand-in worker taking each message it queues."""

    def __init__(self, client: redis.Redis, worker: InlineWorker, settings: Settings) -> None:
        super().__init__(client, result_ttl_s=settings.result_ttl_s, depth_limits=settings.depth_limits)
        self.worker = worker

    def admit(self, jobs, *, model, priority, enqueue=None, stored_inputs=None, callbacks=None, reply_to=None,
              **tenancy):
        self._check_reachable()
        refusals = super().admit(jobs, model=model, priority=priority, enqueue=enqueue, stored_inputs=stored_inputs,
                                 callbacks=callbacks, reply_to=reply_to, **tenancy)
        self.worker.take_queued()
        return refusals

    def enqueue(self, message) -> None:
        self._check_reachable()
        super().enqueue(message)
        self.worker.take_queued()

    def _check_reachable(self) -> None:
        if self.worker.broker_down:
            raise redis.ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")


def stand_in_app(settings: Settings, client: redis.Redis):
    """An app whose messages the stand-in worker answers, and the worker. The app reads the catalog
    and heartbeats at every request (no cache), so that what a test publishes counts at once."""
    worker = InlineWorker(JobStore(client, result_ttl_s=settings.result_ttl_s, depth_limits=settings.depth_limits),
                          client)
    app = create_app(settings, redis_client=client, store=StandInStore(client, worker, settings), models_ttl_s=0)
    return app, worker


@pytest.fixture
def make_app(fake_redis):
    def make(redis_client=None, **overrides):
        return stand_in_app(Settings(**{"sync_timeout_s": 0.3, **overrides}), redis_client or fake_redis)
    return make


def publish_heartbeat(client: redis.Redis, *, version: int | None = STAND_IN_VERSION, spec: ModelSpec | None = None,
                      specs: Sequence[ModelSpec] = (), name: str = "host:1", batch_sizes: Sequence[int] = (),
                      features: Sequence[str] = messages.FEATURES) -> None:
    """A live worker's heartbeat, and its models in the catalog, as a worker writes them: it serves
    ``version`` (None: no model yet) of the model ``spec`` describes (default: an MNIST model from
    inferq's trainer), or every one of ``specs``, ran batches of ``batch_sizes`` and reads the
    message ``features`` (default: this release's; none: a worker of an earlier one)."""
    metrics = WorkerMetrics()
    for size in batch_sizes:
        metrics.record_call("mnist", version or 1, size, 0.001)
    served = list(specs)
    if not served and version is not None:
        served = [dataclasses.replace(spec or mnist_spec(version), version=version)]
    ModelCatalog(client).publish(served)
    WorkerRegistry(client, heartbeat_interval_s=Settings().heartbeat_interval_s).publish(WorkerStatus(
        name=name, hostname="host", pid=1, started_at=time.time(), models=served,
        batches=metrics.batches, images=metrics.images, recent_batch_sizes=list(batch_sizes),
        metrics=metrics.snapshot(), message_features=list(features),
    ))


@pytest.fixture
def serve(fake_redis):
    """Publish a live worker's heartbeat on the apps' Redis (:func:`publish_heartbeat`)."""
    return functools.partial(publish_heartbeat, fake_redis)


@pytest.fixture
def app_and_worker(make_app, serve):
    """An app on the stand-in worker, with the stand-in's heartbeat."""
    serve()
    return make_app()


@pytest.fixture
def client(app_and_worker):
    return app_and_worker[0].test_client()


@pytest.fixture
def worker(app_and_worker):
    return app_and_worker[1]
