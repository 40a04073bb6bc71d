"""One batch, top to bottom: the jobs of a batch's messages through one model call.

1. Decode the messages into jobs (a message that is not one of ours is logged and dropped).
2. Set aside the jobs whose deadline has passed: they end ``expired``, unrun.
3. Mark the others running: one round trip, which overlaps the next two steps.
4. Stack every job's pixels and call the model once.
5. Split the answers back per job, or fail every job with the model's error.
6. Write all outcomes in one round trip.

Any error reaching Redis propagates, so that the batch's messages are delivered again rather than
acknowledged with their jobs unanswered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from inferq import messages
from inferq.jobs import Finished, JobStore, Outcome
from inferq.messages import ImageResult
from inferq.model_contract import N_INPUT
from worker.metrics import WorkerMetrics
from worker.model import LoadedModel

log = logging.getLogger(__name__)


def run_batch(bodies: Sequence[object], model: LoadedModel, store: JobStore, metrics: WorkerMetrics) -> None:
    started = time.perf_counter()
    metrics.messages.inc(len(bodies))
    jobs = _decode(bodies)
    if not jobs:
        return
    now = time.time()
    metrics.record_waits(jobs, now)
    live: list[messages.JobInput] = []
    finished: list[Finished] = []
    for job in jobs:  # one pass: a membership test would compare every job's pixels with every other's
        if job.deadline is None or job.deadline > now:
            live.append(job)
        else:
            finished.append(_expired(job, now, metrics))
    if live:
        with store.running([job.job_id for job in live]):
            pixels = np.frombuffer(b"".join(job.pixels for job in live), np.uint8).reshape(-1, N_INPUT)
            finished += _outcomes(live, pixels, model, metrics)
    store.finish(finished)
    if live:
        metrics.record_batch(len(pixels), time.perf_counter() - started)


def _expired(job: messages.JobInput, now: float, metrics: WorkerMetrics) -> Finished:
    assert job.deadline is not None
    metrics.expired_jobs.labels(metrics.model_name, job.priority).inc()
    late = now - job.deadline
    error = f"its deadline passed {late:.3f} s before a worker could run it; it was not run"
    return Finished(job.job_id, job.count, job.priority, job.reply_to, Outcome.expired(error))


def _outcomes(jobs: list[messages.JobInput], pixels: np.ndarray, model: LoadedModel,
              metrics: WorkerMetrics) -> list[Finished]:
    try:
        with metrics.model_call_seconds.time():
            labels, probabilities = model.predict(pixels)
    except Exception as exc:
        log.exception("model version %d failed on a batch of %d images", model.version, len(pixels))
        error = f"model version {model.version} failed on this batch: {exc}"
        metrics.failed_jobs.inc(len(jobs))
        return [Finished(job.job_id, job.count, job.priority, job.reply_to, Outcome.failed(error)) for job in jobs]
    results = _results(labels, probabilities, model.version)
    finished = []
    offset = 0
    for job in jobs:
        finished.append(Finished(job.job_id, job.count, job.priority, job.reply_to,
                                 Outcome.done(results[offset:offset + job.count])))
        offset += job.count
    return finished


def _decode(bodies: Sequence[object]) -> list[messages.JobInput]:
    jobs = []
    for body in bodies:
        try:
            jobs += messages.decode(body)
        except messages.MessageError as exc:
            log.error("dropped a message that is not ours: %s", exc)
    return jobs


def _results(labels: np.ndarray, probabilities: np.ndarray | None, version: int) -> list[ImageResult]:
    if probabilities is None:
        return [{"label": label, "probabilities": None, "model_version": version} for label in labels.tolist()]
    return [
        {"label": label, "probabilities": row, "model_version": version}
        # Rounded in float64: float32 values rounded print with seventeen digits, twice the JSON.
        for label, row in zip(labels.tolist(), np.round(probabilities.astype(np.float64), 6).tolist(), strict=True)
    ]
