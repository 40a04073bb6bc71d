"""The API's side of the queue: admit and send a job, wait for its outcome, look a job up.

Every route that queues work for a model (the image routes, the TF Serving and KServe routes) goes
through here, so they share admission, backpressure and the batching path. Each model and priority
has its own sender (``api.queue.submitter``), made on first use. A full queue or
an unreachable Redis is raised as such (``QueueFull``, ``SendFailed``, redis-py's errors) and
rendered as a 503 by ``api.errors``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import redis

from api.errors import ApiError
from api.queue.hand_back import HandedBack
from api.queue.model_lookup import Served
from api.queue.replies import ReplyListener, Waiter
from api.queue.submitter import Submitter
from inferq import drain, messages
from inferq.jobs import CANCELLED, EXPIRED, QUEUED, RATE_LIMIT, JobRecord, JobStore, Outcome, QueueFull, TenantOverQuota
from inferq.tenants import DEFAULT_TENANT


class QueuedJob:
    """A job in the queue; :meth:`InferenceQueue.wait` gives its outcome if it was sent to be waited on."""

    def __init__(self, job_id: str, waiter: Waiter | None, wait_s: float | None, *,
                 hand_back: HandedBack | None = None) -> None:
        self.job_id = job_id
        self.waiter = waiter
        #: How long the job is worth waiting for: past that it is not run (unless it is handed back).
        self.wait_s = wait_s
        #: What the request is answered with if the wait ends first, where it asked for that
        #: (``Prefer: respond-async``): then the job runs on, to be polled.
        self.hand_back = hand_back


#: Makes the sender of a model's work of a priority of a tenant, messages of up to the given items.
MakeSubmitter = Callable[[str, str, int, str], Submitter]


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

    def _submitter(self, model: Served, priority: str, tenant: str) -> Submitter:
        # One a tenant too: a message's jobs are one tenant's, counted against its limits and queued
        # in its share of the lane.
        key = (model.name, priority, tenant)
        submitter = self._submitters.get(key)
        if submitter is None:
            with self._lock:
                submitter = self._submitters.get(key)
                if submitter is None:
                    # A message holds up to a batch of the model's: a worker runs it in one call.
                    items = model.spec.config.batch_size_or(self._max_batch_size)
                    submitter = self._submitters[key] = self._make_submitter(model.name, priority, items, tenant)
        return submitter

    def submit(self, model: Served, inputs: Mapping[str, np.ndarray], filenames: Sequence[str], *, reply: bool,
               priority: str, timeout_s: float | None = None, hand_back_after_s: float | None = None,
               callback: str | None = None, job_id: str | None = None,
               tenant: str = DEFAULT_TENANT) -> QueuedJob:
        """Queue one job of ``model``'s ``inputs`` (validated, each ``[items, ...]``), to be waited on
        if ``reply``. ``filenames`` name the items (uploads), or are empty. ``callback``: a URL
        (checked before) to POST the job's final record to; ``tenant``: whose job it is. ``job_id``:
        the job's id where the caller chose it (a UUID; ``api.queue.idempotency`` reserves its key for it
        first).

        The job is not run once ``timeout_s`` has passed, nor, when it is waited on, once the
        wait (SYNC_TIMEOUT_S) is over: nobody would read its answer. A job waited on for
        ``hand_back_after_s`` and then handed back (``Prefer: respond-async``) has no such
        deadline but its own ``timeout_s``: it is polled for once the wait is over.
        """
        job_id = job_id or str(uuid.uuid4())
        hand_back = None
        if reply and hand_back_after_s is not None:
            deadline_s = timeout_s
            wait_s = hand_back_after_s if timeout_s is None else min(timeout_s, hand_back_after_s)
            if timeout_s is None or timeout_s > hand_back_after_s:  # else its deadline ends the wait: a 504
                hand_back = HandedBack(job_id, model.name, priority, len(filenames) or _items(inputs), wait_s)
        else:
            limits = [limit for limit in (timeout_s, self._sync_timeout_s if reply else None) if limit is not None]
            deadline_s = wait_s = min(limits) if limits else None
        now = time.time()
        waiter = self._replies.expect(job_id) if reply else None
        job = messages.JobInput(job_id, inputs, self._replies.name if reply else None, priority,
                                None if deadline_s is None else now + deadline_s, now,
                                model.version if model.addressed else None)
        try:
            self._submitter(model, priority, tenant).submit(job, list(filenames) or [""] * job.count, callback)
        except BaseException:
            self._replies.forget(job_id)
            raise
        return QueuedJob(job_id, waiter, wait_s, hand_back=hand_back)

    def wait(self, submitted: QueuedJob) -> Outcome:
        """The job's outcome, done or failed; a 504 when it did not come in time or expired, and
        :class:`HandedBack` for a job to be handed back when its wait is over."""
        assert submitted.waiter is not None and submitted.wait_s is not None, "nobody waits for this job"
        outcome = submitted.waiter.wait(submitted.wait_s)
        if outcome is None:
            self._replies.forget(submitted.job_id)
            if submitted.hand_back is not None:
                outcome = self._hand_back(submitted.hand_back)
        return answered(submitted.job_id, outcome, submitted.wait_s)

    def _hand_back(self, hand_back: HandedBack) -> Outcome:
        """The outcome that came just as the wait ended, if one did; else :class:`HandedBack`, with
        the job's status as its record has it."""
        record = None
        with contextlib.suppress(redis.RedisError):  # the job is queued all the same: hand it back
            record = self._store.get(hand_back.job_id)
        if record is not None and record.outcome is not None:
            return record.outcome
        hand_back.status = record.status if record is not None else QUEUED
        raise hand_back

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued or running job (``JobStore.cancel``): its record, cancelled; a 409 for a job
        that ended otherwise, a 404 for one unknown."""
        if not _is_job_id(job_id):
            raise ApiError(404, f"no job {job_id!r}: job ids are UUIDs")
        before = self._store.cancel(job_id)
        if before is None:
            raise ApiError(404, f"no job {job_id}: unknown, or older than the results are kept")
        record = self.job(job_id)
        if record.status != CANCELLED:
            raise ApiError(409, f"job {job_id} is {record.status}: only a queued or running job can be cancelled",
                           job_id=job_id, job_status=record.status)
        return record

    @property
    def store(self) -> JobStore:
        return self._store

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

    def retry_after_s(self, full: QueueFull | TenantOverQuota, fallback_s: int) -> int:
        """Seconds until the refused work would fit: at the model's measured drain rate for a full
        lane, the tenant's for its queued items, its bucket's refill for its rate."""
        if isinstance(full, TenantOverQuota):
            if full.limit == RATE_LIMIT:
                return drain.retry_after_s(math.ceil(full.excess), full.tenant.max_items_per_s, fallback_s)
            try:
                rate = drain.read_tenant_rate(self._store.redis, full.tenant.name)
            except redis.RedisError:  # the 429 goes out all the same, with the fallback
                rate = None
            return drain.retry_after_s(math.ceil(full.excess), rate, fallback_s)
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


def answered(job_id: str, outcome: Outcome | None, wait_s: float) -> Outcome:
    """A waited-for job's outcome, done or failed; a 504 for none within ``wait_s`` or one expired, a
    409 for one cancelled."""
    if outcome is None:
        raise ApiError(504, f"no answer within {wait_s:g} s; poll GET /jobs/{job_id} for how the job ended",
                       job_id=job_id)
    if outcome.status == EXPIRED:
        raise ApiError(504, f"no answer within {wait_s:g} s: {outcome.error}", job_id=job_id)
    if outcome.status == CANCELLED:
        raise ApiError(409, f"job {job_id} was {outcome.error}", job_id=job_id, reason="cancelled")
    return outcome


def _items(inputs: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(inputs.values())))


def _is_job_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
