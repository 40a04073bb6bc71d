"""``Idempotency-Key`` on the routes that create a job: a retried request answers the job the first made.

As the IETF httpapi draft (draft-ietf-httpapi-idempotency-key-header) has it: the key is a
structured-field string (``Idempotency-Key: "8e03978e-..."``; a bare token is taken as well); the
same key with the same request answers the job the first request created, whatever became of it;
the same key with another request is a 422, and while the first request with it is still being
admitted, a 409 (try again: it will then be answered its job). A request whose job was not admitted
(a full queue, an unreachable Redis) frees its key, so that its retry can succeed.

A key is scoped to the caller (a hash of its ``Authorization`` header: two callers' keys never
meet) and the model; the version a request addresses is part of its fingerprint, with what else
makes the job: its inputs, their names, its priority and deadline. The fingerprint is of what the
request carries, not of its bytes: a multipart body differs in its boundary from one send to the
next, its content does not. A key lives as long as its job's record (``inferq.jobs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import redis
from flask import Request, has_request_context

from api.errors import ApiError
from api.queue.scheduling import Scheduling
from inferq import keys
from inferq.jobs import JobStore

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
#: Printable ASCII, as an sf-string holds, at most this long.
MAX_KEY_CHARS = 255
_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_CHARS}}}")
#: How long a key is held for a request still being admitted: past any admission (SEND_TIMEOUT_S),
#: so that only a request that died lets another take its key.
PENDING_S = 60.0


@dataclasses.dataclass(frozen=True)
class Created:
    job_id: str
    #: Whether the job is an earlier request's, answered again.
    replayed: bool


def key_of(request: Request) -> str | None:
    """The request's Idempotency-Key, or None; a 400 for one that is not an sf-string."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not _KEY.fullmatch(value) or not value.strip():
        raise ApiError(400, f"{HEADER} must be a string of 1 to {MAX_KEY_CHARS} printable ASCII characters, "
                            'as in Idempotency-Key: "<a UUID>"', reason="idempotency_key")
    return value


def fingerprint(*, model: str, version: int | None, inputs: Mapping[str, np.ndarray], filenames: Sequence[str],
                scheduling: Scheduling, callback: str | None = None) -> str:
    """SHA-256 of what makes the job: its model's version addressed, inputs, names, scheduling and
    callback."""
    digest = hashlib.sha256()
    for part in (model, str(version), scheduling.priority, repr(scheduling.timeout_s), repr(list(filenames)),
                 repr(callback)):
        digest.update(part.encode() + b"\0")
    for name in sorted(inputs):
        array = np.ascontiguousarray(inputs[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())
    return digest.hexdigest()


def scope(request: Request, model: str, key: str) -> str:
    """The Redis key of ``key`` for this caller and model."""
    caller = hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()
    return keys.idempotency(hashlib.sha256(f"{caller}\0{model}\0{key}".encode()).hexdigest())


def create_once(request: Request, store: JobStore, *, model: str, request_fingerprint: Callable[[], str],
                create: Callable[[str | None], str]) -> Created:
    """The job a request creates: ``create(job_id)`` (None: it picks the id) makes and admits it, unless
    the request's Idempotency-Key was used before: then the job that key made (or a 422 or 409)."""
    key = key_of(request) if has_request_context() else None  # the gRPC front end has no HTTP headers
    if key is None:
        return Created(create(None), False)
    name = scope(request, model, key)
    wanted = request_fingerprint()
    job_id = str(uuid.uuid4())
    held = store.reserve_key(name, wanted, job_id, pending_s=PENDING_S)
    if held.fingerprint != wanted:
        raise ApiError(422, f"this {HEADER} was used for another request (other images, model version, "
                            "priority or deadline); use a new key for a new request", reason="idempotency_key_reused")
    if held.job_id != job_id:
        if not held.bound:
            raise ApiError(409, f"a request with this {HEADER} is still being admitted; try again shortly",
                           headers={"Retry-After": "1"}, reason="idempotency_key_in_flight")
        return Created(held.job_id, True)
    try:
        created = create(job_id)
    except BaseException:
        # Admitted or not, as the job's record says: a refused job frees its key for the retry.
        with contextlib.suppress(redis.RedisError):
            store.settle_key(name, job_id, wanted)
        raise
    store.settle_key(name, job_id, wanted)
    return Created(created, False)
