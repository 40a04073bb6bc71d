"""Sends admitted jobs to the workers, the jobs of requests that arrive together in one message.

A worker's cost is per message, not per image (DESIGN.md: the per-message Celery/kombu path, not
the model, limits throughput), so the API packs concurrent requests into one message. Request
threads hand their jobs to a single sender thread and wait until their message is sent; the jobs
handed over while a message is being sent go together in the next one. There is no timer: on an
idle API a lone request is sent at once, and under load messages fill up by themselves, up to
MAX_BATCH_SIZE images.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading

from celery import Celery

from inferq import messages

log = logging.getLogger(__name__)


class SendFailed(Exception):
    """The broker did not take the message."""


@dataclasses.dataclass
class _Handover:
    job: messages.Job
    sent: threading.Event = dataclasses.field(default_factory=threading.Event)
    error: Exception | None = None


class Submitter:
    def __init__(self, celery: Celery, *, max_images_per_message: int, send_timeout_s: float = 10.0) -> None:
        self._celery = celery
        self._max_images = max_images_per_message
        self._timeout = send_timeout_s
        self._handovers: queue.SimpleQueue[_Handover | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def send(self, job: messages.Job) -> None:
        """Return once ``job`` is in the broker's queue; raise :class:`SendFailed` if it is not."""
        handover = _Handover(job)
        self._ensure_sender()
        self._handovers.put(handover)
        if not handover.sent.wait(self._timeout):
            raise SendFailed(f"the broker did not take the message within {self._timeout:g} s")
        if handover.error is not None:
            raise SendFailed(str(handover.error)) from handover.error

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._handovers.put(None)
                self._thread.join(timeout=self._timeout)
                self._thread = None

    def _ensure_sender(self) -> None:
        # Started on first use, in the process that serves requests (gunicorn forks after import).
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inferq-submitter", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while (first := self._handovers.get()) is not None:
            batch = [first]
            images = first.job.count
            while images < self._max_images:
                try:
                    handover = self._handovers.get_nowait()
                except queue.Empty:
                    break
                if handover is None:
                    self._handovers.put(None)
                    break
                batch.append(handover)
                images += handover.job.count
            self._send(batch, images)

    def _send(self, batch: list[_Handover], images: int) -> None:
        jobs = [handover.job for handover in batch]
        error: Exception | None = None
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
            error = exc
        for handover in batch:
            handover.error = error
            handover.sent.set()
