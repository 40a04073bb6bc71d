"""What the API and the workers say to each other: the Celery task, its message, a result's shape.

A message carries one or more jobs of one model (a job is one request's items: images, rows,
strings): the API puts the jobs of requests that arrive together into one message, because the
broker's per-message path, not the model, is what limits a worker. Each job carries its inputs as
tensors, validated by the API against the model's signature: numbers as the base64 of their raw
little-endian bytes (one decode per tensor on the worker, a fraction of the size of JSON numbers),
strings as the base64 of each. A tensor may travel in a narrower type than the model takes when
that is exact (image pixels as uint8 for a float32 input): the worker casts. Only JSON goes over
the wire.

A numeric tensor larger than :data:`MAX_INLINE_BYTES` (a bulk job's images) travels beside its
message instead: its raw bytes go into its job's inputs hash (``inferq.keys.job_inputs``) when the
job is admitted, and the message says only its type and shape. In the message it would be base64
inside JSON inside the envelope's JSON, encoded by the API and decoded twice by the worker, and
copied through the broker's claim script: most of a worker's time on bulk work went there.
Workers read both forms, and say so in their heartbeats (:data:`FEATURES`); the API stores
tensors beside messages only while every live worker reads them, so that during a rolling upgrade
no worker of an earlier release is handed a message it cannot read.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from inferq.mnist_contract import N_INPUT, SIGNATURE_INPUT
from inferq.priorities import INTERACTIVE, PRIORITIES

#: The task's name on the wire, one task for every model (the message names its model). Kept from
#: the first release, when the task was named for the route.
TASK_NAME = "inferq.recognize"

#: Message headers: the number of items a message carries and its model, so that the batcher can
#: count a batch's items per model without decoding bodies.
IMAGES_HEADER = "inferq_images"
MODEL_HEADER = "inferq_model"

FORMAT_VERSION = 2

#: Numeric types travel as raw bytes; ``string`` as a list of base64 items.
STRING = "string"


#: Bytes of a numeric tensor past which it is stored beside its message rather than in it; one
#: request's image or row stays inline, costing no read of its own.
MAX_INLINE_BYTES = 64 * 1024

#: What this release's workers read beyond the first version-2 messages, named in their
#: heartbeats: tensors stored beside their message.
STORED_INPUTS = "stored-inputs"
FEATURES = (STORED_INPUTS,)


class MessageError(ValueError):
    """A message body that is not a list of jobs as :func:`encode` writes them."""


@dataclasses.dataclass(frozen=True)
class StoredTensor:
    """A tensor stored beside its message (in its job's inputs hash): its type and shape, the bytes
    still to be read. Until then it stands in for the array in :attr:`JobInput.inputs`."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def load(self, data: bytes) -> np.ndarray:
        if len(data) != math.prod(self.shape) * self.dtype.itemsize:
            raise MessageError(f"{len(data)} bytes stored for shape {list(self.shape)} of {self.dtype.name}")
        return np.frombuffer(data, self.dtype).reshape(self.shape)


@dataclasses.dataclass(frozen=True, eq=False)
class JobInput:
    job_id: str
    #: The model's inputs by name, each ``[count, ...]`` (strings: object arrays of bytes); as a
    #: worker decodes a message, a :class:`StoredTensor` for each input still to be read.
    inputs: Mapping[str, np.ndarray | StoredTensor]
    #: The API process waiting for this job's outcome (``inferq.keys.replies``), if one is.
    reply_to: str | None
    priority: str = INTERACTIVE
    #: Unix time past which the job is not worth running (its client has given up), if any.
    deadline: float | None = None
    #: Unix time the job was queued at, for the queue-wait metric.
    queued_at: float | None = None
    #: The version the request asked for; None: whichever the worker serves newest.
    version: int | None = None

    @property
    def count(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def stored(self) -> list[str]:
        """The inputs still to be read from the job's inputs hash."""
        return [name for name, tensor in self.inputs.items() if isinstance(tensor, StoredTensor)]

    def with_stored(self, data: Mapping[str, bytes]) -> JobInput:
        """This job with its stored inputs read from ``data`` (input name -> bytes). Raises
        :class:`MessageError` if one is missing or of the wrong size."""
        inputs = dict(self.inputs)
        for name in self.stored:
            if name not in data:
                raise MessageError(f"job {self.job_id}: input {name!r} is no longer stored")
            inputs[name] = self.inputs[name].load(data[name])
        return dataclasses.replace(self, inputs=inputs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JobInput):
            return NotImplemented
        fields = ("job_id", "reply_to", "priority", "deadline", "queued_at", "version")
        return (all(getattr(self, name) == getattr(other, name) for name in fields)
                and self.inputs.keys() == other.inputs.keys()
                and all(_same(self.inputs[name], other.inputs[name]) for name in self.inputs))


def _same(a: np.ndarray | StoredTensor, b: np.ndarray | StoredTensor) -> bool:
    if isinstance(a, StoredTensor) or isinstance(b, StoredTensor):
        return a == b
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.all(a == b))


def encode(model: str, jobs: Sequence[JobInput], *, store_large: bool = False) -> dict:
    """The message body for ``jobs``; ``store_large``: leave tensors over :data:`MAX_INLINE_BYTES`
    out, to be stored with the jobs (:func:`stored_inputs`), else carry every tensor inline."""
    return {
        "v": FORMAT_VERSION,
        "model": model,
        "jobs": [
            {"id": job.job_id, "reply_to": job.reply_to, "priority": job.priority, "deadline": job.deadline,
             "queued_at": job.queued_at, "version": job.version,
             "inputs": {name: encode_tensor(array, store_large=store_large) for name, array in job.inputs.items()}}
            for job in jobs
        ],
    }


def encode_tensor(array: np.ndarray, *, store_large: bool = False) -> dict:
    if array.dtype == object:
        return {"dtype": STRING, "shape": list(array.shape),
                "data": [base64.b64encode(item).decode("ascii") for item in array.ravel()]}
    if store_large and _is_stored(array):
        return {"dtype": array.dtype.name, "shape": list(array.shape), "stored": True}
    return {"dtype": array.dtype.name, "shape": list(array.shape),
            "data": base64.b64encode(_raw(array)).decode("ascii")}


def stored_inputs(jobs: Sequence[JobInput]) -> dict[str, dict[str, bytes]]:
    """What :func:`encode` leaves out of the message, to be stored with the jobs: job id -> input
    name -> raw bytes, for the jobs that have any."""
    stored = {job.job_id: {name: _raw(array) for name, array in job.inputs.items() if _is_stored(array)}
              for job in jobs}
    return {job_id: inputs for job_id, inputs in stored.items() if inputs}


def _is_stored(array: np.ndarray) -> bool:
    return array.dtype != object and array.nbytes > MAX_INLINE_BYTES


def _raw(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def image_count(jobs: Sequence[JobInput]) -> int:
    return sum(job.count for job in jobs)


#: The format of the first releases, when every message was for the one MNIST model: its images'
#: 28x28 uint8 pixels as ``pixels``. Still read, so that work queued across an upgrade is answered.
LEGACY_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class RejectedJob:
    """A job of a message that could not be read, as far as it could be: enough to fail it alone and
    answer whoever waits for it, while the message's other jobs run."""

    job_id: str
    reply_to: str | None
    #: None where the job names no priority this release knows.
    priority: str | None
    #: Its items as the message declares them (its first input's first dimension, what the API
    #: counted it as), 0 where that is unreadable too.
    count: int
    #: What is wrong with it, in words a client may read (nothing of the worker's own).
    reason: str


@dataclasses.dataclass(frozen=True)
class Message:
    """A message body as a worker reads it: never refused whole while its jobs can be told apart."""

    #: None where the message names none.
    model: str | None
    jobs: list[JobInput]
    rejected: list[RejectedJob]
    #: Why the message itself is unreadable (every job it names is then rejected), if it is.
    error: str | None = None
    #: Jobs not even an id could be read from: nothing can answer them.
    unidentified: int = 0


def read(body: object, *, legacy_model: str | None = None) -> Message:
    """The model a message is for, the jobs it carries that can run, and those that cannot. A message
    of the first releases' format is read as one for ``legacy_model`` (the MNIST model), if given."""
    if legacy_model is not None and isinstance(body, dict) and body.get("v") == LEGACY_FORMAT_VERSION:
        if not isinstance(body.get("jobs"), list):
            return Message(None, [], [], f"not an inferq v{LEGACY_FORMAT_VERSION} message")
        return _read_jobs(legacy_model, body["jobs"], _legacy_job)
    if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
        return Message(None, [], [], f"not an inferq v{FORMAT_VERSION} message")
    model = body.get("model")
    if body.get("v") != FORMAT_VERSION or not isinstance(model, str):
        # Its jobs cannot be run, but those whose ids can be read can still be answered.
        error = f"not an inferq v{FORMAT_VERSION} message"
        rejected = [_rejected(raw, error) for raw in body["jobs"]]
        return Message(model if isinstance(model, str) else None, [], [job for job in rejected if job],
                       error, sum(job is None for job in rejected))
    return _read_jobs(model, body["jobs"], _job)


def decode(body: object, *, legacy_model: str | None = None) -> tuple[str, list[JobInput]]:
    """The model a message is for, and its jobs, every one of which must be readable: raises
    :class:`MessageError` otherwise (a worker reads with :func:`read`, which fails bad jobs alone)."""
    message = read(body, legacy_model=legacy_model)
    if message.error is not None or message.model is None:
        raise MessageError(message.error)
    if message.unidentified:
        raise MessageError(f"{message.unidentified} jobs without an id")
    if message.rejected:
        raise MessageError(f"job {message.rejected[0].job_id}: {message.rejected[0].reason}")
    return message.model, message.jobs


def _read_jobs(model: str, raws: list, read_job: Callable[[object], JobInput]) -> Message:
    jobs, rejected, unidentified = [], [], 0
    for raw in raws:
        try:
            jobs.append(read_job(raw))
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:  # MessageError too
            reason = str(exc) if isinstance(exc, MessageError) else f"malformed job: {exc!r}"
            if (job := _rejected(raw, reason)) is not None:
                rejected.append(job)
            else:
                unidentified += 1
    return Message(model, jobs, rejected, unidentified=unidentified)


def _job(raw: object) -> JobInput:
    reply_to, deadline, queued_at, version = (raw["reply_to"], raw.get("deadline"), raw.get("queued_at"),
                                              raw.get("version"))
    inputs = {str(name): decode_tensor(tensor) for name, tensor in raw["inputs"].items()}
    job = JobInput(_id(raw), inputs, None if reply_to is None else str(reply_to),
                   raw.get("priority", INTERACTIVE),
                   None if deadline is None else float(deadline),
                   None if queued_at is None else float(queued_at),
                   None if version is None else int(version))
    if job.priority not in PRIORITIES:
        raise MessageError(f"no priority {job.priority!r}")
    counts = {name: len(array) if array.ndim else 0 for name, array in inputs.items()}
    if not counts or not all(counts.values()):
        raise MessageError("it has no items")
    if len(set(counts.values())) != 1:
        raise MessageError("its inputs hold different numbers of items: "
                           + ", ".join(f"{name!r} {count}" for name, count in counts.items()))
    return job


def _legacy_job(raw: object) -> JobInput:
    pixels = np.frombuffer(binascii.a2b_base64(raw["pixels"], strict_mode=True), np.uint8)
    job = JobInput(_id(raw), {SIGNATURE_INPUT: pixels.reshape(-1, N_INPUT)},
                   None if raw["reply_to"] is None else str(raw["reply_to"]),
                   raw.get("priority", INTERACTIVE),
                   None if raw.get("deadline") is None else float(raw["deadline"]),
                   None if raw.get("queued_at") is None else float(raw["queued_at"]))
    if job.priority not in PRIORITIES:
        raise MessageError(f"no priority {job.priority!r}")
    if not job.count:
        raise MessageError("it has no images")
    return job


def _id(raw: Mapping) -> str:
    job_id = raw["id"]
    if isinstance(job_id, bool) or not isinstance(job_id, (str, int)) or job_id == "":
        raise TypeError(f"a job's id is a string, not {job_id!r}")
    return str(job_id)


def _rejected(raw: object, reason: str) -> RejectedJob | None:
    """What can be read of a job that cannot run; None where not even its id can."""
    if not isinstance(raw, Mapping):
        return None
    try:
        job_id = _id(raw)
    except (KeyError, TypeError):
        return None
    reply_to, priority = raw.get("reply_to"), raw.get("priority", INTERACTIVE)
    return RejectedJob(job_id, reply_to if isinstance(reply_to, str) else None,
                       priority if isinstance(priority, str) and priority in PRIORITIES else None,
                       _declared_count(raw), reason)


def _declared_count(raw: Mapping) -> int:
    """The items a job's first input declares, as the API counted them; 0 where unreadable."""
    inputs = raw.get("inputs")
    if isinstance(inputs, Mapping) and inputs:
        tensor = next(iter(inputs.values()))
        shape = tensor.get("shape") if isinstance(tensor, Mapping) else None
        if isinstance(shape, list) and shape and isinstance(shape[0], int) and not isinstance(shape[0], bool):
            return max(0, shape[0])
    return 0


def decode_tensor(tensor: Mapping) -> np.ndarray | StoredTensor:
    shape = tuple(int(size) for size in tensor["shape"])
    if tensor.get("stored") is True:
        dtype = np.dtype(tensor["dtype"]).newbyteorder("<")
        if dtype.kind not in "biuf":
            raise ValueError(f"no stored tensor of type {tensor['dtype']!r}")
        return StoredTensor(dtype, shape)
    if tensor["dtype"] == STRING:
        items = [binascii.a2b_base64(item, strict_mode=True) for item in tensor["data"]]
        if len(items) != math.prod(shape):
            raise ValueError(f"{len(items)} strings for shape {list(shape)}")
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array.reshape(shape)
    # binascii validates in C; base64.b64decode(validate=True) runs a regex over every byte.
    data = binascii.a2b_base64(tensor["data"], strict_mode=True)
    dtype = np.dtype(tensor["dtype"]).newbyteorder("<")
    if dtype.kind not in "biuf":
        raise ValueError(f"no tensor type {tensor['dtype']!r}")
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"{len(data)} bytes for shape {list(shape)} of {dtype.name}")
    return np.frombuffer(data, dtype).reshape(shape)
