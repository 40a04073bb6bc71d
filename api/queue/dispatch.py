"""What every route that runs a model shares: the model looked up, a job queued, its answer as tensors.

The image routes, TF Serving's and KServe's all queue one job per request through the same queue
(``api.queue.inference_queue``), batched with everyone else's. A job's inputs are validated against the
model's signature before this point (``api.kserve.codec``, ``api.tfserving.codec``, the image
preprocessing), so nothing queued can fail for its shape.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping, Sequence

import numpy as np
import orjson
from flask import request

from api.errors import ApiError, unavailable
from api.queue import idempotency
from api.queue.hand_back import HandedBack
from api.queue.inference_queue import QueuedJob, answered
from api.queue.job_watch import until_final
from api.queue.model_lookup import Served
from api.queue.scheduling import Scheduling
from api.runtime import runtime
from inferq.jobs import FAILED, Outcome
from inferq.model_spec import TensorSpec


def served_model(name: str, version: int | None = None) -> Served:
    """Model ``name`` at ``version`` (None: its newest), or a 404 that says what is served (a 503 for
    the default model before any worker has loaded it)."""
    rt = runtime()
    return rt.models.find(name, version, expected=name == rt.settings.default_model)


def json_object(raw: bytes, what: str) -> dict:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson takes only strict UTF-8 JSON, ints of 64 bits and no NaN: the json module reads
        # what it refuses as before, and words the refusals of what neither reads.
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
            raise ApiError(400, f"{what} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"{what} must be a JSON object")
    return body


def submit(served: Served, inputs: Mapping[str, np.ndarray], filenames: Sequence[str], *, reply: bool,
           scheduling: Scheduling, callback: str | None = None, job_id: str | None = None) -> QueuedJob:
    """Queue one job of ``served``'s validated ``inputs`` (as ``job_id``, where the caller chose it),
    its final record POSTed to ``callback`` (a checked URL) if given. A job waited on (``reply``) is
    handed back when its wait is over where the request prefers it (``Scheduling.hand_back_after_s``:
    HTTP's ``Prefer: respond-async``, ``api.queue.prefer``)."""
    rt = runtime()
    hand_back_after_s = scheduling.hand_back_after_s if reply else None
    submitted = rt.queue.submit(served, inputs, filenames, reply=reply, priority=scheduling.priority,
                                timeout_s=scheduling.timeout_s, hand_back_after_s=hand_back_after_s,
                                callback=callback, job_id=job_id, tenant=scheduling.tenant)
    rt.metrics.images_accepted.labels(served.name).inc(len(next(iter(inputs.values()))))
    return submitted


def submit_and_wait(served: Served, inputs: Mapping[str, np.ndarray], filenames: Sequence[str],
                    scheduling: Scheduling) -> tuple[str, Outcome]:
    """Queue one job and wait for its outcome (``InferenceQueue.wait``): its id and outcome, done or
    failed. With an ``Idempotency-Key`` (``api.queue.idempotency``), a request whose key made a job
    before is not queued again: it waits for that job's outcome, as long as it would have waited
    for its own (its ``Prefer`` wait, else SYNC_TIMEOUT_S), and is handed back or answered 504
    as it would have been."""
    rt = runtime()
    submitted: QueuedJob | None = None

    def create(job_id: str | None) -> str:
        nonlocal submitted
        submitted = submit(served, inputs, filenames, reply=True, scheduling=scheduling, job_id=job_id)
        return submitted.job_id

    def fingerprint() -> str:
        return idempotency.fingerprint(model=served.name, version=served.version if served.addressed else None,
                                       inputs=inputs, filenames=filenames, scheduling=scheduling)

    created = idempotency.create_once(request, rt.queue.store, model=served.name, request_fingerprint=fingerprint,
                                      create=create)
    if submitted is not None:
        return submitted.job_id, rt.queue.wait(submitted)
    hand_back_after_s = scheduling.hand_back_after_s
    wait_s = rt.settings.sync_timeout_s if hand_back_after_s is None else hand_back_after_s
    record = until_final(rt.queue, rt.events, created.job_id, wait_s)
    if record.outcome is None and hand_back_after_s is not None:
        handed_back = HandedBack(created.job_id, served.name, record.priority,
                                 len(filenames) or len(next(iter(inputs.values()))), wait_s)
        handed_back.status = record.status
        raise handed_back
    return created.job_id, answered(created.job_id, record.outcome, wait_s)


@dataclasses.dataclass(frozen=True)
class ModelOutputs:
    """The version that answered, and each output's values, one row per item."""

    version: int
    values: dict[str, np.ndarray]


def infer(served: Served, inputs: Mapping[str, np.ndarray], outputs: Sequence[TensorSpec],
          scheduling: Scheduling) -> ModelOutputs:
    """Queue ``inputs`` as one job, wait for its answer, and give the ``outputs`` asked for as arrays."""
    job_id, outcome = submit_and_wait(served, inputs, [], scheduling)
    if outcome.status == FAILED:
        raise ApiError(500, f"inference failed: {outcome.error}", job_id=job_id)
    answer = outcome.answer or {}
    version = answer.get("model_version")
    values = answer.get("outputs", {})
    check_version(served, version)
    missing = [tensor.name for tensor in outputs if tensor.name not in values]
    if missing:
        raise unavailable(f"model version {version} answered without {', '.join(map(repr, missing))}: the served "
                          "model changed; try again")
    return ModelOutputs(int(version), {tensor.name: as_array(values[tensor.name], tensor) for tensor in outputs})


def check_version(served: Served, version: object) -> None:
    """A 503 where the request named a version and another answered (workers moving between versions):
    an answer from another version than the one addressed is no answer."""
    if served.addressed and version != served.version:
        raise unavailable(f"version {served.version} was asked for but version {version} answered: the "
                          "workers are changing versions; try again")


def as_array(values: list, tensor: TensorSpec) -> np.ndarray:
    """An output as the job store holds it (JSON lists; strings as text or ``{"b64": ...}``), typed."""
    if tensor.dtype != "string":
        return np.asarray(values, dtype=tensor.dtype)
    flat = np.asarray(values, dtype=object)
    items = np.empty(flat.shape, dtype=object)
    for index, item in np.ndenumerate(flat):
        items[index] = base64.b64decode(item["b64"]) if isinstance(item, dict) else str(item).encode()
    return items
