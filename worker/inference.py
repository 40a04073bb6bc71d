"""One batch, top to bottom: the jobs of a batch's messages through one model call per model.

1. Decode the messages into jobs, grouped by model and version (a message that is not one of ours
   is logged and dropped).
2. Set aside the jobs whose deadline has passed: they end ``expired``, unrun.
3. Read the inputs that travel beside the messages (bulk jobs': ``inferq.messages``), one round
   trip for the batch; a job whose inputs are gone fails.
4. Mark the others running: one round trip, which overlaps the next two steps.
5. For each model and version, stack every job's inputs and call the model once.
6. Split each call's outputs back per job, or fail that call's jobs with its error: a model that
   fails fails only its own jobs.
7. Write all outcomes, and delete the stored inputs, in one round trip.

Any error reaching Redis propagates, so that the batch's messages are delivered again rather than
acknowledged with their jobs unanswered.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from inferq import messages
from inferq.jobs import Finished, JobStore, Outcome
from worker.metrics import WorkerMetrics

if TYPE_CHECKING:  # the batch path needs no TensorFlow of its own: the models bring it
    from worker.model import LoadedModel

log = logging.getLogger(__name__)

#: The model to run a group's jobs on, by model name and version (None: the newest served).
FindModel = Callable[[str, "int | None"], "LoadedModel | None"]

Group = tuple[str, int | None]


def run_batch(bodies: Sequence[object], find_model: FindModel, store: JobStore, metrics: WorkerMetrics, *,
              legacy_model: str | None = None) -> None:
    """``legacy_model``: the model that messages of the first releases' format are for."""
    started = time.perf_counter()
    metrics.messages.inc(len(bodies))
    groups = _decode(bodies, legacy_model)
    if not groups:
        return
    now = time.time()
    live: dict[Group, list[messages.JobInput]] = {}
    finished: list[Finished] = []
    for (model, version), jobs in groups.items():
        metrics.record_waits(model, jobs, now)
        for job in jobs:  # one pass: a membership test would compare every job's inputs with every other's
            if job.deadline is None or job.deadline > now:
                live.setdefault((model, version), []).append(job)
            else:
                finished.append(_expired(model, job, now, metrics))
    stored = [job.job_id for jobs in groups.values() for job in jobs if job.stored]
    if stored:
        live = _read_stored(live, store, finished, metrics)
    if live:
        with store.running([job.job_id for jobs in live.values() for job in jobs]):
            for (model, version), jobs in live.items():
                finished += _outcomes(model, version, jobs, find_model, metrics)
    store.finish(finished, stored=stored)
    metrics.batch_seconds.observe(time.perf_counter() - started)


def _read_stored(groups: dict[Group, list[messages.JobInput]], store: JobStore, finished: list[Finished],
                 metrics: WorkerMetrics) -> dict[Group, list[messages.JobInput]]:
    """The jobs with their stored inputs read; those whose inputs are gone go to ``finished``, failed
    (a job delivered again after it finished has none left, and finishing it again changes nothing)."""
    pending = [job for jobs in groups.values() for job in jobs if job.stored]
    data = dict(zip((job.job_id for job in pending), store.stored_inputs([job.job_id for job in pending]),
                    strict=True))
    read: dict[Group, list[messages.JobInput]] = {}
    for (model, version), jobs in groups.items():
        for job in jobs:
            try:
                job = job.with_stored(data[job.job_id]) if job.stored else job
            except messages.MessageError as exc:
                finished += _failed(model, [job], str(exc), metrics)
                continue
            read.setdefault((model, version), []).append(job)
    return read


def _expired(model: str, job: messages.JobInput, now: float, metrics: WorkerMetrics) -> Finished:
    assert job.deadline is not None
    metrics.expired_jobs.labels(model, job.priority).inc()
    late = now - job.deadline
    error = f"its deadline passed {late:.3f} s before a worker could run it; it was not run"
    return Finished(job.job_id, job.count, model, job.priority, job.reply_to, Outcome.expired(error))


def _outcomes(name: str, version: int | None, jobs: list[messages.JobInput], find_model: FindModel,
              metrics: WorkerMetrics) -> list[Finished]:
    try:
        model = find_model(name, version)
    except Exception as exc:  # a load on demand that failed: the model's jobs fail, not the batch
        log.exception("could not load model %s for a batch", name)
        return _failed(name, jobs, f"model {name!r} could not be loaded: {exc}", metrics)
    if model is None:
        which = f"model {name!r}" + (f" version {version}" if version is not None else "")
        return _failed(name, jobs, f"{which} is not served by this worker (removed from the repository?)", metrics)
    finished = []
    for same_shapes in _by_item_shape(jobs):
        finished += _call(model, same_shapes, metrics)
    return finished


def _call(model: LoadedModel, jobs: list[messages.JobInput], metrics: WorkerMetrics) -> list[Finished]:
    name, version = model.spec.name, model.spec.version
    items = sum(job.count for job in jobs)
    try:
        inputs = {key: (jobs[0].inputs[key] if len(jobs) == 1 else np.concatenate([job.inputs[key] for job in jobs]))
                  for key in jobs[0].inputs}
        called = time.perf_counter()
        outputs = model.predict(inputs)
        metrics.record_call(name, version, items, time.perf_counter() - called)
        for key, values in outputs.items():
            if values.ndim == 0 or len(values) != items:
                raise ValueError(f"output {key!r} has shape {list(values.shape)} for {items} items")
        # Made writable here, so that an output the job store cannot write fails this call's jobs,
        # not the whole batch when its outcomes are written.
        outputs = {key: _writable(key, values) for key, values in outputs.items()}
    except Exception as exc:
        log.exception("model %s version %d failed on a batch of %d items", name, version, items)
        return _failed(name, jobs, f"model {name!r} version {version} failed on this batch: {exc}", metrics)
    finished = []
    offset = 0
    for job in jobs:
        answer = {"model_version": version,
                  "outputs": {key: _jsonable(values[offset:offset + job.count]) for key, values in outputs.items()}}
        finished.append(Finished(job.job_id, job.count, name, job.priority, job.reply_to, Outcome.done(answer)))
        offset += job.count
    return finished


def _writable(key: str, values: np.ndarray) -> np.ndarray:
    """An output as the job store can write it: numbers and booleans in native byte order (orjson
    writes no other), strings as an object array."""
    if values.dtype.kind in "biuf":
        return values.astype(values.dtype.newbyteorder("="), copy=False)
    if values.dtype.kind in "OSU":
        return values.astype(object, copy=False)
    raise ValueError(f"output {key!r} is of type {values.dtype}, which inferq cannot answer with")


def _failed(model: str, jobs: list[messages.JobInput], error: str, metrics: WorkerMetrics) -> list[Finished]:
    metrics.failed_jobs.labels(model).inc(len(jobs))
    return [Finished(job.job_id, job.count, model, job.priority, job.reply_to, Outcome.failed(error)) for job in jobs]


def _by_item_shape(jobs: list[messages.JobInput]) -> list[list[messages.JobInput]]:
    """The jobs in runs whose items have the same shapes and types, which stack into one call: a
    model with a dimension of any size may get items of different sizes from different requests."""
    runs: dict[tuple, list[messages.JobInput]] = {}
    for job in jobs:
        key = tuple((name, array.shape[1:], array.dtype.str) for name, array in sorted(job.inputs.items()))
        runs.setdefault(key, []).append(job)
    return list(runs.values())


def _jsonable(values: np.ndarray) -> object:
    """An output as the job store writes it: numbers stay an array (orjson writes it, exactly and
    fast); strings become text, or ``{"b64": ...}`` where they are not UTF-8."""
    if values.dtype != object:
        return np.ascontiguousarray(values)
    return _strings(values.tolist())


def _strings(items: object) -> object:
    if isinstance(items, list):
        return [_strings(item) for item in items]
    if isinstance(items, str):  # NumPy's str_ as a plain str
        return str(items)
    if isinstance(items, bytes):
        try:
            return items.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(items).decode("ascii")}
    return items


def _decode(bodies: Sequence[object], legacy_model: str | None) -> dict[Group, list[messages.JobInput]]:
    groups: dict[Group, list[messages.JobInput]] = {}
    for body in bodies:
        try:
            model, jobs = messages.decode(body, legacy_model=legacy_model)
        except messages.MessageError as exc:
            log.error("dropped a message that is not ours: %s", exc)
            continue
        for job in jobs:
            groups.setdefault((model, job.version), []).append(job)
    return groups
