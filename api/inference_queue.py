"""The API's side of the queue: admit and send a job, wait for its outcome, look a job up.

Every route that queues work for a model (the image routes, the TF Serving and KServe routes) goes
through here, so they share admission, backpressure and the batching path. Each model and priority
has its own sender (``api.submitter``), made on first use. A full queue or
an unreachable Redis is raised as such (``QueueFull``, ``SendFailed``, redis-py's errors) and
rendered as a 503 by ``api.errors``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import redis

from api.errors import ApiError
from api.replies import ReplyListener, Waiter
from api.served_models import Served
from api.submitter import Submitter
from inferq import drain, messages
from inferq.jobs import EXPIRED, JobRecord, JobStore, Outcome, QueueFull


class Submitted:
    """A job in the queue; :meth:`InferenceQueue.wait` gives its outcome if it was sent to be waited on."""

    def __init__(self, job_id: str, waiter: Waiter | None, wait_s: float | None) -> None:
        self.job_id = job_id
        self.waiter = waiter
        #: How long the job is worth waiting for: past that it is not run.
        self.wait_s = wait_s


#: Makes the sender of a model's work of a priority, messages of up to the given items.
MakeSubmitter = Callable[[str, str, int], Submitter]


class InferenceQueue:
    def __init__(self, store: JobStore, make_submitter: MakeSubmitter, replies: ReplyListener, *,
                 sync_timeout_s: float, max_batch_size: int) -> None:
        self._store = store
        self._make_submitter = make_submitter
        self._submitters: dict[tuple[str, str], Submitter] = {}
        self._lock = threading.Lock()
        self._replies = replies
        self._sync_timeout_s = sync_timeout_s
        self._max_batch_size = max_batch_size

    def _submitter(self, model: Served, priority: str) -> Submitter:
        key = (model.name, priority)
        submitter = self._submitters.get(key)
        if submitter is None:
            with self._lock:
                submitter = self._submitters.get(key)
                if submitter is None:
                    # A message holds up to a batch of the model's: a worker runs it in one call.
                    items = model.spec.config.max_batch_size or self._max_batch_size
                    submitter = self._submitters[key] = self._make_submitter(model.name, priority, items)
        return submitter

    def submit(self, model: Served, inputs: Mapping[str, np.ndarray], filenames: Sequence[str], *, reply: bool,
               priority: str, timeout_s: float | None = None, callback: str | None = None) -> Submitted:
        """Queue one job of ``model``'s ``inputs`` (validated, each ``[items, ...]``), to be waited on
        if ``reply``. ``filenames`` name the items (uploads), or are empty. ``callback``: a URL
        (checked before) to POST the job's final record to.

        The job is not run once ``timeout_s`` has passed, nor, when it is waited on, once the
        wait (SYNC_TIMEOUT_S) is over: nobody would read its answer.
        """
        job_id = str(uuid.uuid4())
        limits = [limit for limit in (timeout_s, self._sync_timeout_s if reply else None) if limit is not None]
        wait_s = min(limits) if limits else None
        now = time.time()
        waiter = self._replies.expect(job_id) if reply else None
        job = messages.JobInput(job_id, inputs, self._replies.name if reply else None, priority,
                                None if wait_s is None else now + wait_s, now,
                                model.version if model.addressed else None)
        try:
            self._submitter(model, priority).submit(job, list(filenames) or [""] * job.count, callback)
        except BaseException:
            self._replies.forget(job_id)
            raise
        return Submitted(job_id, waiter, wait_s)

    def wait(self, submitted: Submitted) -> Outcome:
        """The job's outcome, done or failed; a 504 when it did not come in time or expired."""
        assert submitted.waiter is not None and submitted.wait_s is not None, "nobody waits for this job"
        outcome = submitted.waiter.wait(submitted.wait_s)
        if outcome is None:
            self._replies.forget(submitted.job_id)
            raise ApiError(504, f"no answer within {submitted.wait_s:g} s; poll GET /jobs/{submitted.job_id} "
                                "for how the job ended", job_id=submitted.job_id)
        if outcome.status == EXPIRED:
            raise ApiError(504, f"no answer within {submitted.wait_s:g} s: {outcome.error}", job_id=submitted.job_id)
        return outcome

    def job(self, job_id: str) -> JobRecord:
        if not _is_job_id(job_id):
            raise ApiError(404, f"no job {job_id!r}: job ids are UUIDs")
        record = self._store.get(job_id)
        if record is None:
            raise ApiError(404, f"no job {job_id}: unknown, or older than the results are kept")
        return record

    def position(self, record: JobRecord) -> dict[str, object] | None:
        """Where a queued job stands in its lane (``inferq.drain``); None for one of no named model."""
        if record.model is None:
            return None
        return drain.position(self._store.redis, model=record.model, priority=record.priority,
                              lane_mark=record.lane_mark)

    def retry_after_s(self, full: QueueFull, fallback_s: int) -> int:
        """Seconds until the refused work would fit, at the model's measured drain rate."""
        rate = None
        if full.model is not None:
            try:
                rate = drain.read_rate(self._store.redis, full.model)
            except redis.RedisError:  # the 503 goes out all the same, with the fallback
                rate = None
        excess = full.depth + full.images - self._store.depth_limits.get(full.priority, full.depth)
        return drain.retry_after_s(excess, rate, fallback_s)

    def queued_images(self, models: Sequence[str]) -> dict[str, dict[str, int]]:
        """Items admitted and not yet answered, by model and priority."""
        return self._store.queued_images(models)

    @property
    def depth_limits(self) -> dict[str, int]:
        return self._store.depth_limits

    def dead_letters(self) -> int:
        return self._store.dead_letters()


def _is_job_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
