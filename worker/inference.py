"""One batch, top to bottom: the jobs of a batch's messages through the fewest model calls that fit.

1. Decode the messages into jobs, grouped by model and version. A job that cannot be read fails
   alone; a message that is not one of ours is logged and dropped, and the jobs it names failed.
2. Set aside the jobs whose deadline has passed: they end ``expired``, unrun.
3. Mark the others running, and skip those a client cancelled (``DELETE /jobs/<id>``), which were
   counted down when cancelled: one round trip (``JobStore.start``).
4. Read the inputs that travel beside the messages (bulk jobs': ``inferq.messages``), one round
   trip for the batch; a job whose inputs are gone fails.
5. For each model and version, stack the jobs' inputs into calls of at most the model's
   ``max_batch_size`` items (else MAX_BATCH_SIZE): one call when they fit, a big job's items over
   several, small jobs packed together.
6. Put each call's outputs back together per job, or fail the jobs a call held with its error: a
   model that fails fails only its own jobs. After each call, the jobs it answered part of (a big
   job's items over several calls) have their progress written: one round trip a call, which
   overlaps the next call.
7. Write all outcomes, and delete the stored inputs, in one round trip; given the batch's messages
   as they are held (``inferq.broker.held_messages``), acknowledge them in that same round trip.

What goes back to a client says what happened without the worker's internals: a model's failure,
or one to load it, is answered with an error id, and logged in full with the same id.

Any error reaching Redis propagates, so that the batch's messages are delivered again rather than
acknowledged with their jobs unanswered.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from inferq import messages
from inferq.broker import HeldMessages
from inferq.jobs import Finished, JobStore, Outcome
from inferq.model_spec import ANY, ModelSpec
from inferq.settings import Settings
from worker.metrics import WorkerMetrics
from worker.model_errors import InputMismatch

if TYPE_CHECKING:  # the batch path needs no TensorFlow of its own: the models bring it
    from worker.model import LoadedModel

log = logging.getLogger(__name__)

#: The model to run a group's jobs on, by model name and version (None: the newest served).
FindModel = Callable[[str, "int | None"], "LoadedModel | None"]

Group = tuple[str, int | None]


#: Items a model call holds at most where neither the model's config nor the worker says.
DEFAULT_MAX_BATCH_SIZE = Settings.max_batch_size


def answer_batch(bodies: Sequence[object], find_model: FindModel, store: JobStore, metrics: WorkerMetrics, *,
                 legacy_model: str | None = None, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 between_calls: Callable[[], None] | None = None, acks: HeldMessages | None = None) -> bool:
    """``legacy_model``: the model that messages of the first releases' format are for;
    ``max_batch_size``: the items of one model call where the model's config does not say;
    ``between_calls``: called between two model calls of a group (``worker.interactive_first``);
    ``acks``: the batch's messages, acknowledged with its outcomes. Answers whether they were (not
    when the batch held no job to finish: the caller then acknowledges them)."""
    started = time.perf_counter()
    metrics.messages.inc(len(bodies))
    groups, rejected = _decode(bodies, legacy_model)
    finished: list[Finished] = _rejected(rejected, store, metrics) if rejected else []
    if not groups and not finished:
        return False
    now = time.time()
    live: dict[Group, list[messages.JobInput]] = {}
    for (model, version), jobs in groups.items():
        metrics.record_waits(model, jobs, now)
        for job in jobs:  # one pass: a membership test would compare every job's inputs with every other's
            if job.deadline is None or job.deadline > now:
                live.setdefault((model, version), []).append(job)
            else:
                finished.append(_expired(model, job, now, metrics))
    if live:
        live = _started(live, store)
    # A rejected job may have had inputs stored with it: they go with its outcome, as others' do.
    stored = [job.job_id for jobs in groups.values() for job in jobs if job.stored] + [
        job.job_id for _, job in rejected]
    if any(job.stored for jobs in live.values() for job in jobs):
        live = _read_stored(live, store, finished, metrics)
    if live:
        with store.progress_reports() as report:
            for (model, version), jobs in live.items():
                finished += _outcomes(model, version, jobs, find_model, metrics, max_batch_size, report,
                                      between_calls)
    store.finish(finished, stored=stored, acks=acks)
    metrics.batch_seconds.observe(time.perf_counter() - started)
    return acks is not None


def _started(groups: dict[Group, list[messages.JobInput]],
             store: JobStore) -> dict[Group, list[messages.JobInput]]:
    """The jobs nobody cancelled, marked running. One cancelled after this is run all the same:
    finishing it then writes nothing over its cancellation and counts nothing down again."""
    cancelled = store.start([job.job_id for jobs in groups.values() for job in jobs])
    if not cancelled:
        return groups
    log.info("skipping %d cancelled jobs", len(cancelled))
    kept = {group: [job for job in jobs if job.job_id not in cancelled] for group, jobs in groups.items()}
    return {group: jobs for group, jobs in kept.items() if jobs}


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


#: Reports items done so far (job id -> items) of jobs that are still running (``JobStore.progress_reports``).
ReportProgress = Callable[[dict[str, int]], None]


def _outcomes(name: str, version: int | None, jobs: list[messages.JobInput], find_model: FindModel,
              metrics: WorkerMetrics, max_batch_size: int, report: ReportProgress,
              between_calls: Callable[[], None] | None = None) -> list[Finished]:
    try:
        model = find_model(name, version)
    except Exception:  # a load on demand that failed: the model's jobs fail, not the batch
        error_id = _error_id()
        log.exception("could not load model %s for a batch (error id %s)", name, error_id)
        return _failed(name, jobs, f"model {name!r} could not be loaded (error id {error_id}); see the worker's log",
                       metrics)
    if model is None:
        which = f"model {name!r}" + (f" version {version}" if version is not None else "")
        return _failed(name, jobs, f"{which} is not served by this worker (removed from the repository?)", metrics)
    limit = call_limit(model.spec, max_batch_size)
    finished = []
    for same_shapes in _by_item_shape(jobs):
        finished += _run(model, same_shapes, limit, metrics, report, between_calls)
    return finished


def call_limit(spec: ModelSpec, max_batch_size: int) -> int | None:
    """The items one call of a model may hold: its config's ``max_batch_size``, else the worker's.
    None for a model whose tensors do not all begin with a batch dimension of any size: as Triton
    serves one of ``max_batch_size`` 0 (``api/kserve/triton_config.py``), each job is a call of its own,
    whole (its shape is the model's)."""
    if not all(tensor.shape and tensor.shape[0] == ANY for tensor in (*spec.inputs, *spec.outputs)):
        return None
    return spec.config.batch_size_or(max_batch_size)


#: A model call's share of a job: the job's position in its run, and the items it takes from it.
Piece = tuple[int, int, int]


def plan_calls(counts: Sequence[int], limit: int | None) -> list[list[Piece]]:
    """The calls for jobs of these item counts, in order: each a list of (job, start, stop) of at most
    ``limit`` items in all, packed full, a job's items over as many calls as they need; a call per
    job where there is no limit."""
    if limit is None:
        return [[(index, 0, count)] for index, count in enumerate(counts)]
    calls: list[list[Piece]] = []
    call: list[Piece] = []
    room = limit
    for index, count in enumerate(counts):
        start = 0
        while start < count:
            stop = start + min(room, count - start)
            call.append((index, start, stop))
            room -= stop - start
            start = stop
            if room == 0:
                calls.append(call)
                call, room = [], limit
    if call:
        calls.append(call)
    return calls


def _run(model: LoadedModel, jobs: list[messages.JobInput], limit: int | None,
         metrics: WorkerMetrics, report: ReportProgress,
         between_calls: Callable[[], None] | None = None) -> list[Finished]:
    name, version = model.spec.name, model.spec.version
    # Each job's outputs, one dict a call it had items in (most jobs: one); the error of a job that failed.
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in jobs]
    errors: dict[int, str] = {}
    for number, pieces in enumerate(plan_calls([job.count for job in jobs], limit)):
        if all(index in errors for index, _, _ in pieces):
            continue  # every job it holds has failed already: its answer would be thrown away
        if number and between_calls is not None:
            # A big job's calls leave room for work waiting on a person (worker.interactive_first).
            between_calls()
        try:
            outputs = _call(model, [(jobs[index], start, stop) for index, start, stop in pieces], metrics)
        except Exception as exc:
            error = _call_failed(name, version, sum(stop - start for _, start, stop in pieces), exc)
            for index, _, _ in pieces:
                errors.setdefault(index, error)
            continue
        offset = 0
        for index, start, stop in pieces:
            parts[index].append({key: values[offset:offset + stop - start] for key, values in outputs.items()})
            offset += stop - start
        # Only a job this call left unfinished has progress to tell: the others' outcome is next.
        unfinished = {jobs[index].job_id: stop for index, _, stop in pieces
                      if stop < jobs[index].count and index not in errors}
        if unfinished:
            report(unfinished)
    finished = []
    for index, job in enumerate(jobs):
        if index not in errors:
            try:
                outputs = _joined(parts[index])
            except ValueError as exc:  # outputs whose later dimensions differ from call to call
                errors[index] = _call_failed(name, version, job.count, exc)
            else:
                answer = {"model_version": version,
                          "outputs": {key: _jsonable(values) for key, values in outputs.items()}}
                finished.append(Finished(job.job_id, job.count, name, job.priority, job.reply_to,
                                         Outcome.done(answer)))
                continue
        finished += _failed(name, [job], errors[index], metrics)
    return finished


def _call(model: LoadedModel, pieces: list[tuple[messages.JobInput, int, int]],
          metrics: WorkerMetrics) -> dict[str, np.ndarray]:
    """One model call on the pieces' items, its outputs checked and made writable."""
    items = sum(stop - start for _, start, stop in pieces)
    # Slices are views: a job in one piece, whole, goes in as it is, and np.concatenate is the one copy.
    inputs = {key: (_slice(pieces[0], key) if len(pieces) == 1
                    else np.concatenate([_slice(piece, key) for piece in pieces]))
              for key in pieces[0][0].inputs}
    called = time.perf_counter()
    outputs = model.predict(inputs)
    metrics.record_call(model.spec.name, model.spec.version, items, time.perf_counter() - called)
    for key, values in outputs.items():
        if values.ndim == 0 or len(values) != items:
            raise ValueError(f"output {key!r} has shape {list(values.shape)} for {items} items")
    # Made writable here, so that an output the job store cannot write fails this call's jobs,
    # not the whole batch when its outcomes are written.
    return {key: _writable(key, values) for key, values in outputs.items()}


def _slice(piece: tuple[messages.JobInput, int, int], key: str) -> np.ndarray:
    job, start, stop = piece
    array = job.inputs[key]
    return array if start == 0 and stop == len(array) else array[start:stop]


def _joined(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A job's outputs from the calls it was run in, in order."""
    if len(parts) == 1:
        return parts[0]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _call_failed(name: str, version: int, items: int, exc: Exception) -> str:
    """The error a failed call's jobs are answered with. A mismatch of the inputs with the signature
    is the client's own and said as it is; anything else is the model's or the worker's (TensorFlow's
    text names graph nodes and files), logged in full under an id the client is given."""
    if isinstance(exc, InputMismatch):
        log.warning("model %s version %d refused a call of %d items: %s", name, version, items, exc)
        return f"model {name!r} version {version} refused this batch's inputs: {exc}"
    error_id = _error_id()
    log.error("model %s version %d failed on a call of %d items (error id %s)", name, version, items, error_id,
              exc_info=exc)
    return f"model {name!r} version {version} failed on this batch (error id {error_id}); see the worker's log"


def _error_id() -> str:
    return secrets.token_hex(4)


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


def _decode(bodies: Sequence[object], legacy_model: str | None
            ) -> tuple[dict[Group, list[messages.JobInput]], list[tuple[str | None, messages.RejectedJob]]]:
    """The batch's jobs by model and version, and those that cannot run, each with its message's model."""
    groups: dict[Group, list[messages.JobInput]] = {}
    rejected: list[tuple[str | None, messages.RejectedJob]] = []
    for body in bodies:
        message = messages.read(body, legacy_model=legacy_model)
        if message.error is not None:
            log.error("dropped a message that is not ours (%s), failing the %d jobs it names: %.300r",
                      message.error, len(message.rejected), body)
        elif message.rejected or message.unidentified:
            log.error("a message for model %s holds %d jobs that cannot be read; failing them alone: %s",
                      message.model, len(message.rejected) + message.unidentified,
                      "; ".join(f"{job.job_id}: {job.reason}" for job in message.rejected))
        if message.unidentified:
            log.error("%d jobs without an id cannot be answered: %.300r", message.unidentified, body)
        rejected += [(message.model, job) for job in message.rejected]
        for job in message.jobs:
            assert message.model is not None
            groups.setdefault((message.model, job.version), []).append(job)
    return groups, rejected


def _rejected(rejected: list[tuple[str | None, messages.RejectedJob]], store: JobStore,
              metrics: WorkerMetrics) -> list[Finished]:
    """Jobs that cannot run, failed with what is wrong. Each is counted down from the counter and by
    the items its admission counted, as its record says (the message's own word, if it is the
    malformed part, need not be); a job without a record is counted as its message declares it."""
    finished = []
    for model, job in rejected:
        record = store.get(job.job_id)
        if record is not None:
            model, priority, count = record.model or model, record.priority, len(record.filenames)
        else:
            priority, count = job.priority, job.count
        if model is None or priority is None:
            log.error("job %s cannot be failed: neither it nor its record names its model and priority", job.job_id)
            continue
        metrics.failed_jobs.labels(model).inc()
        finished.append(Finished(job.job_id, count, model, priority, job.reply_to,
                                 Outcome.failed(f"the worker could not read this job: {job.reason}")))
    return finished
