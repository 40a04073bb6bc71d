"""Admits jobs and sends them to the workers, the jobs of requests that arrive together at once.

A worker's cost is per message, not per image (the per-message Celery/kombu path, not the model,
limits throughput: docs/design.md), and so is much of the API's: so concurrent requests share one
admission call and one message. A request queues its job, and if no request is sending it becomes
the sender: it takes what is queued, oldest first, up to MAX_BATCH_SIZE images, and admits those
jobs and queues their message in one Redis round trip, until its own job is sent. Then it hands
the sending over to the oldest request still waiting, if any, and goes back to its own client: a
sender never works for later arrivals, so under load no request waits behind a stream of others'
sends. There is no timer and no thread of its own: on an idle API a lone request is sent by its
own thread at once, and under load messages fill up by themselves while the previous one is being
sent.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence

import redis

from api.errors import SendFailed
from inferq import messages
from inferq.broker import Envelope
from inferq.jobs import QUEUE_FULL, JobStore, QueueFull, TenantOverQuota
from inferq.task_messages import TaskMessages
from inferq.tenants import DEFAULT, Tenant

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Pending:
    job: messages.JobInput
    filenames: Sequence[str]
    #: Where the job's final record is POSTed, if anywhere (checked before).
    callback: str | None = None
    #: Set when the job is settled, and when its request is asked to take over the sending.
    woken: threading.Event = dataclasses.field(default_factory=threading.Event)
    #: Sent, refused or failed: ``error`` tells which.
    settled: bool = False
    error: Exception | None = None


class Submitter:
    def __init__(self, task_messages: TaskMessages, store: JobStore, *, model: str, priority: str,
                 max_items_per_message: int, send_timeout_s: float = 15.0,
                 store_large: Callable[[], bool] = lambda: False,
                 tenant: Callable[[], Tenant] = lambda: DEFAULT, fair_share: bool = False) -> None:
        """Sends jobs of one ``model``, ``priority`` and ``tenant``: a message goes on that model's
        priority's queue, in the tenant's share of it; ``tenant()`` is asked for its limits (as now
        configured) once a message. ``fair_share``: its messages go on the tenant's list of the
        queue, taken in its share (``inferq.broker``); else on the queue's own, as before tenants.
        ``store_large`` says whether large tensors may travel beside their message (every live
        worker reads them: ``inferq.messages``), asked once a message."""
        self._messages = task_messages
        self._store_large = store_large
        self._model = model
        self._tenant = tenant
        self._fair_share = fair_share
        self._priority = priority
        self._store = store
        self._max_items = max_items_per_message
        self._timeout = send_timeout_s
        self._pending: collections.deque[_Pending] = collections.deque()
        self._sending = threading.Lock()

    def submit(self, job: messages.JobInput, filenames: Sequence[str], callback: str | None = None) -> None:
        """Return once ``job`` is admitted and in the broker's queue.

        Raises :class:`~inferq.jobs.QueueFull` if it would overfill the queue, :class:`SendFailed`
        if the broker or Redis did not take it.
        """
        pending = _Pending(job, filenames, callback)
        self._pending.append(pending)
        deadline = time.monotonic() + self._timeout
        while not pending.settled:
            # Cleared before trying the lock: a hand-over that comes after a failed try still wakes us.
            pending.woken.clear()
            if self._sending.acquire(blocking=False):
                try:
                    self._send_until_settled(pending)
                finally:
                    self._sending.release()
                self._hand_over()
            elif not pending.woken.wait(max(0.0, deadline - time.monotonic())):
                self._abandon(pending)
                raise SendFailed(f"the broker did not take the message within {self._timeout:g} s")
        if pending.error is not None:
            raise pending.error

    def _send_until_settled(self, own: _Pending) -> None:
        # Jobs are taken oldest first, so each round settles the oldest waiting ones, ours at last.
        while not own.settled and (batch := self._take_batch()):
            self._admit_and_send(batch)

    def _hand_over(self) -> None:
        # Whoever sends next takes the oldest job first: waking the request that owns it is enough.
        with contextlib.suppress(IndexError):
            self._pending[0].woken.set()

    def _abandon(self, pending: _Pending) -> None:
        # Out of the queue, so that the next one gets the hand-overs it would have had. If a sender
        # has it already, it may still go out: the client is told it failed all the same.
        with contextlib.suppress(ValueError):
            self._pending.remove(pending)
        self._hand_over()

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        images = 0
        while images < self._max_items:
            try:
                pending = self._pending.popleft()
            except IndexError:
                break
            batch.append(pending)
            images += pending.job.count
        return batch

    def _admit_and_send(self, batch: list[_Pending]) -> None:
        # One round trip: the job store admits the jobs and pushes their message if all of them
        # fit, and admits nothing otherwise: then the jobs that fit are tried again, on their own
        # in a message of their own, until an admission takes all it is given. Each try leaves out
        # at least one job, so there are at most as many as jobs, and only when a queue is full.
        tenant = self._tenant()
        try:
            store_large = self._store_large()
        except redis.RedisError:  # the admission will say what is wrong; inline, every worker reads it
            store_large = False
        stored = messages.stored_inputs([pending.job for pending in batch]) if store_large else {}
        while batch:
            callbacks = {pending.job.job_id: pending.callback for pending in batch if pending.callback}
            try:
                refusals = self._store.admit([(pending.job.job_id, pending.filenames) for pending in batch],
                                             model=self._model, priority=self._priority, tenant=tenant,
                                             enqueue=self._envelope(batch, store_large, tenant), stored_inputs=stored,
                                             reply_to={pending.job.job_id: pending.job.reply_to for pending in batch
                                                       if pending.job.reply_to},
                                             **({"callbacks": callbacks} if callbacks else {}))
            except redis.RedisError as exc:  # nothing was admitted
                self._release(batch, SendFailed(str(exc)))
                return
            fitting = []
            for pending, depth in zip(batch, refusals, strict=True):
                if depth is None:
                    fitting.append(pending)
                elif isinstance(depth, TenantOverQuota):
                    self._store.count_refused(tenant.name, depth.limit, pending.job.count)
                    self._release([pending], depth)
                else:
                    self._store.count_refused(tenant.name, QUEUE_FULL, pending.job.count)
                    self._release([pending], QueueFull(self._priority, depth, self._model, images=pending.job.count))
            if len(fitting) == len(batch):
                self._release(batch, None)
                return
            batch = fitting

    def _envelope(self, batch: list[_Pending], store_large: bool, tenant: Tenant) -> Envelope:
        return self._messages.envelope(self._model, [pending.job for pending in batch], self._priority,
                                       store_large=store_large, tenant=tenant.name if self._fair_share else None)

    @staticmethod
    def _release(batch: list[_Pending], error: Exception | None) -> None:
        for pending in batch:
            pending.error = error
            pending.settled = True
            pending.woken.set()

