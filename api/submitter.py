"""Admits jobs and sends them to the workers, the jobs of requests that arrive together at once.

A worker's cost is per message, not per image (DESIGN.md: the per-message Celery/kombu path, not
the model, limits throughput), and so is much of the API's: so concurrent requests share one
admission call and one message. A request thread queues its job, and if no thread is sending it
becomes the sender: it admits everything queued, its own job included, and sends what was admitted
as one message (up to MAX_BATCH_SIZE images), and again while jobs keep arriving. Threads that find
a send under way wait for it to take their job along. There is no timer and no thread hand-off: on
an idle API a lone request is sent by its own thread at once, and under load messages fill up by
themselves while the previous one is being sent.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Sequence

from celery import Celery

from inferq import messages
from inferq.jobs import JobStore, QueueFull

log = logging.getLogger(__name__)


class SendFailed(Exception):
    """The broker did not take the message (or did not answer)."""


@dataclasses.dataclass
class _Pending:
    job: messages.Job
    filenames: Sequence[str]
    sent: threading.Event = dataclasses.field(default_factory=threading.Event)
    error: Exception | None = None


class Submitter:
    def __init__(self, celery: Celery, store: JobStore, *, max_images_per_message: int,
                 send_timeout_s: float = 15.0) -> None:
        self._celery = celery
        self._store = store
        self._max_images = max_images_per_message
        self._timeout = send_timeout_s
        self._pending: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._sending = threading.Lock()

    def submit(self, job: messages.Job, filenames: Sequence[str]) -> None:
        """Return once ``job`` is admitted and in the broker's queue.

        Raises :class:`~inferq.jobs.QueueFull` if it would overfill the queue, :class:`SendFailed`
        if the broker or Redis did not take it.
        """
        pending = _Pending(job, filenames)
        self._pending.put(pending)
        self._send_pending()
        if not pending.sent.wait(self._timeout):
            raise SendFailed(f"the broker did not take the message within {self._timeout:g} s")
        if pending.error is not None:
            raise pending.error

    def _send_pending(self) -> None:
        # Whoever queued a job last either finds a sender at work, which checks the queue again
        # after letting go of the lock, or becomes the sender itself: no job is left behind.
        while not self._pending.empty() and self._sending.acquire(blocking=False):
            try:
                while batch := self._take_batch():
                    self._admit_and_send(batch)
            finally:
                self._sending.release()

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        images = 0
        while images < self._max_images:
            try:
                pending = self._pending.get_nowait()
            except queue.Empty:
                break
            batch.append(pending)
            images += pending.job.count
        return batch

    def _admit_and_send(self, batch: list[_Pending]) -> None:
        try:
            refusals = self._store.admit([(pending.job.job_id, pending.filenames) for pending in batch])
        except Exception as exc:  # Redis out of reach: nothing was admitted
            self._release(batch, SendFailed(str(exc)))
            return
        admitted = [pending for pending, depth in zip(batch, refusals, strict=True) if depth is None]
        for pending, depth in zip(batch, refusals, strict=True):
            if depth is not None:
                self._release([pending], QueueFull(depth))
        if admitted:
            self._release(admitted, self._send(admitted))

    def _send(self, admitted: list[_Pending]) -> Exception | None:
        jobs = [pending.job for pending in admitted]
        images = messages.image_count(jobs)
        try:
            self._celery.send_task(
                messages.TASK_NAME,
                args=[messages.encode(jobs)],
                headers={messages.IMAGES_HEADER: images},
                ignore_result=True,
                argsrepr=f"<{len(jobs)} jobs, {images} images>",
            )
        except Exception as exc:  # kombu raises the transport's own errors
            log.warning("could not send %d jobs to the broker: %s", len(jobs), exc)
            try:
                self._store.withdraw({job.job_id: job.count for job in jobs})
            except Exception as withdraw_error:
                log.warning("could not withdraw the %d jobs either: %s", len(jobs), withdraw_error)
            return SendFailed(str(exc))
        return None

    @staticmethod
    def _release(batch: list[_Pending], error: Exception | None) -> None:
        for pending in batch:
            pending.error = error
            pending.sent.set()
