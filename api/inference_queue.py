"""The API's side of the queue: admit and send a job, wait for its outcome, look a job up.

Every route that recognises images (``/recognize``, ``/jobs``, the TF Serving and KServe routes)
goes through here, so they share admission, backpressure and the batching path. A full queue or
an unreachable Redis is raised as such (``QueueFull``, ``SendFailed``, redis-py's errors) and
rendered as a 503 by ``api.errors``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from api.errors import ApiError
from api.replies import ReplyListener, Waiter
from api.submitter import Submitter
from inferq import messages
from inferq.jobs import JobRecord, JobStore, Outcome


class Submitted:
    """A job in the queue; :meth:`InferenceQueue.wait` gives its outcome if it was sent to be waited on."""

    def __init__(self, job_id: str, waiter: Waiter | None) -> None:
        self.job_id = job_id
        self.waiter = waiter


class InferenceQueue:
    def __init__(self, store: JobStore, submitter: Submitter, replies: ReplyListener, *,
                 sync_timeout_s: float) -> None:
        self._store = store
        self._submitter = submitter
        self._replies = replies
        self._sync_timeout_s = sync_timeout_s

    def submit(self, filenames: Sequence[str], pixels: bytes, *, reply: bool) -> Submitted:
        """Queue one job of ``len(filenames)`` images, to be waited on if ``reply``."""
        job_id = str(uuid.uuid4())
        waiter = self._replies.expect(job_id) if reply else None
        job = messages.JobInput(job_id, pixels, self._replies.name if reply else None)
        try:
            self._submitter.submit(job, filenames)
        except BaseException:
            self._replies.forget(job_id)
            raise
        return Submitted(job_id, waiter)

    def wait(self, submitted: Submitted) -> Outcome:
        assert submitted.waiter is not None, "a job submitted without reply has nobody to wait for it"
        outcome = submitted.waiter.wait(self._sync_timeout_s)
        if outcome is None:
            self._replies.forget(submitted.job_id)
            raise ApiError(504, f"no answer within {self._sync_timeout_s:g} s; the job goes on, "
                                f"poll GET /jobs/{submitted.job_id}", job_id=submitted.job_id)
        return outcome

    def job(self, job_id: str) -> JobRecord:
        if not _is_job_id(job_id):
            raise ApiError(404, f"no job {job_id!r}: job ids are UUIDs")
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
