"""What the queue costs a batch, beside its model call: the worker's own batch path (``answer_batch``) on
a real Redis, fed as the API feeds it, with the model's answers replayed instead of computed.

A round admits ``n`` one-item jobs as the API does (``JobStore.admit``, a message each, a listener
waiting for each), then runs their ``n`` messages through :func:`worker.inference.answer_batch`: the
decode, the look for cancelled jobs, the running mark, the outcomes written and the listeners
answered. The model there is the real one's spec with the outputs a real call gave for that batch
(:class:`ReplayedModel`), so what is timed is everything a batch costs but the call. A straight
line through the rounds' medians by ``n`` gives the cost per batch and per item; admission is timed
on its own (it is the API's, but on a shared host it takes the same cores).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np
import redis

from inferq import messages
from inferq.jobs import JobStore
from inferq.priorities import BULK, INTERACTIVE
from inferq.settings import Settings
from worker.call_costs import batch_inputs
from worker.inference import answer_batch
from worker.metrics import WorkerMetrics

#: Batch sizes the line is drawn through, and rounds of each.
SIZES = (1, 4, 16, 64)
ROUNDS = 30
#: The listener the jobs' answers go to, as an API process's (drained after each round).
LISTENER = "tune"


@dataclasses.dataclass(frozen=True)
class QueueCost:
    #: A batch's cost in the worker that does not grow with its items (round trips, scripts).
    per_batch_ms: float
    #: What each item adds in the worker (its message decoded, its outcome packed and written).
    per_item_ms: float
    #: What admitting one job costs the API (its admission script and message).
    admit_per_item_ms: float

    def batch_ms(self, batch: int) -> float:
        """The worker's queue cost of a batch of ``batch`` items."""
        return self.per_batch_ms + self.per_item_ms * batch


class ReplayedModel:
    """A loaded model as ``answer_batch`` uses one (its spec, ``predict``), answering with what the real
    model gave for the same batch size, without calling it."""

    def __init__(self, model) -> None:
        self.spec = model.spec
        self._model = model
        self._answers: dict[int, dict[str, np.ndarray]] = {}

    @property
    def version(self) -> int:
        return self.spec.version

    def prepare(self, batch: int) -> None:
        self._answers[batch] = self._model.predict(batch_inputs(self.spec, batch))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = len(next(iter(inputs.values())))
        if batch not in self._answers:  # a config's max_batch_size split the batch: once a size
            self.prepare(batch)
        return self._answers[batch]


def lower_quartile(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=4)[0] if len(samples) > 1 else samples[0]


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Intercept and slope of the least-squares line through (x, y) points; neither below 0."""
    xs = np.array([x for x, _ in points], float)
    ys = np.array([y for _, y in points], float)
    slope, intercept = np.polyfit(xs, ys, 1)
    if slope < 0:
        return max(float(ys.mean()), 0.0), 0.0
    if intercept < 0:
        return 0.0, float((xs * ys).sum() / (xs * xs).sum())
    return float(intercept), float(slope)


def measure(model, redis_url: str, *, sizes: Sequence[int] = SIZES, rounds: int = ROUNDS,
            on_round: Callable[[], None] = lambda: None) -> QueueCost:
    """The queue's costs for ``model`` (a loaded :class:`worker.model.LoadedModel`) on the Redis at
    ``redis_url``, whose database it empties before and after."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    store = JobStore(client, result_ttl_s=60, depth_limits={INTERACTIVE: 10**9, BULK: 10**9})
    replayed = ReplayedModel(model)
    name = model.spec.name
    item = {input_name: array[:1] for input_name, array in batch_inputs(model.spec, 1).items()}
    admits: list[float] = []
    batches: list[tuple[float, float]] = []
    try:
        for size in sizes:
            replayed.prepare(size)
            samples = []
            for _ in range(rounds):
                jobs = [messages.JobInput(str(uuid.uuid4()), item, LISTENER, INTERACTIVE, None, time.time())
                        for _ in range(size)]
                bodies = []
                for job in jobs:
                    body = messages.encode(name, [job], store_large=True)
                    started = time.perf_counter()
                    store.admit([(job.job_id, ["item"])], model=name, priority=INTERACTIVE,
                                stored_inputs=messages.stored_inputs([job]), reply_to={job.job_id: LISTENER})
                    admits.append(time.perf_counter() - started)
                    bodies.append(body)
                started = time.perf_counter()
                answer_batch(bodies, lambda _name, _version: replayed, store, WorkerMetrics(),
                             max_batch_size=max(size, Settings.max_batch_size))
                samples.append(time.perf_counter() - started)
                client.flushdb()
                on_round()
            batches.append((size, lower_quartile(samples) * 1000))
    finally:
        client.flushdb()
    per_batch, per_item = fit_line(batches)
    return QueueCost(per_batch, per_item, lower_quartile(admits) * 1000)
