"""The API's side of the queue: admit a job, send it to the workers, wait for it or look it up.

Every route that recognises images (``/recognize``, ``/jobs``, the TF Serving and KServe routes)
goes through here, so they share admission, backpressure and the batching path. Redis being out
of reach becomes a 503 that says so; the next request simply tries again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis

from api.errors import ApiError
from api.submitter import SendFailed, Submitter
from inferq import messages
from inferq.jobs import JobRecord, JobStore, Outcome, QueueFull

log = logging.getLogger(__name__)

#: Seconds a client refused for a full queue or an unreachable broker is asked to wait.
RETRY_AFTER_S = 1


class InferenceQueue:
    def __init__(self, store: JobStore, submitter: Submitter, *, sync_timeout_s: float) -> None:
        self._store = store
        self._submitter = submitter
        self._sync_timeout_s = sync_timeout_s

    def submit(self, filenames: Sequence[str], pixels: bytes, *, reply: bool) -> str:
        """Queue one job of ``len(filenames)`` images; its id once the broker holds it."""
        job_id = str(uuid.uuid4())
        with _broker_errors():
            try:
                self._store.admit(job_id, filenames)
            except QueueFull as full:
                raise ApiError(503, f"the queue is full ({full.depth} images waiting); try again shortly",
                               headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        try:
            self._submitter.send(messages.Job(job_id, pixels, reply))
        except SendFailed as exc:
            with _broker_errors():
                self._store.withdraw({job_id: len(filenames)})
            raise _unavailable(exc) from None
        return job_id

    def wait(self, job_id: str) -> Outcome:
        with _broker_errors():
            outcome = self._store.wait(job_id, self._sync_timeout_s)
        if outcome is None:
            raise ApiError(504, f"no answer within {self._sync_timeout_s:g} s; the job goes on, "
                                f"poll GET /jobs/{job_id}", job_id=job_id)
        return outcome

    def job(self, job_id: str) -> JobRecord:
        if not _is_job_id(job_id):
            raise ApiError(404, f"no job {job_id!r}: job ids are UUIDs")
        with _broker_errors():
            record = self._store.get(job_id)
        if record is None:
            raise ApiError(404, f"no job {job_id}: unknown, or expired")
        return record

    def queued_images(self) -> int:
        return self._store.queued_images()


def _is_job_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


@contextmanager
def _broker_errors() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise _unavailable(exc) from None


def _unavailable(cause: Exception) -> ApiError:
    log.warning("queue unavailable: %s", cause)
    return ApiError(503, "queue unavailable; try again shortly", headers={"Retry-After": str(RETRY_AFTER_S)})
