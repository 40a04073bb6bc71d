"""celery-batches' ``Batches`` task, with batches counted in images and no wait behind an empty queue.

Use it for a task whose every call costs much more than each item it handles (a model call) and
whose messages carry a varying number of items, told by the ``inferq_images`` header. A batch is
run when it holds ``max_images`` images; or as soon as the broker queue behind it is empty, since
nothing more is coming to wait for, so a lone image on an idle system is answered at once; or at
the latest ``flush_interval`` seconds after its first message came (celery-batches' timer). The
queue is looked at (one LLEN) only when every message seen at the last look has come in, so under
load, when it is long, it is rarely asked.

Messages are acknowledged once their batch has run and its outcomes are written. If that fails, or
the pool process running the batch dies, they are rejected back onto the queue for another try.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Collection
from typing import Any

import redis
from celery import Celery
from celery.worker.consumer import Consumer
from celery.worker.request import Request
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

from inferq.messages import IMAGES_HEADER

log = logging.getLogger(__name__)

#: What the task's ``run`` returns once its batch's outcomes are written.
BATCH_DONE = "done"


class ImageBatches(Batches):
    abstract = True

    #: Images in a batch at which it is run.
    max_images = 64
    #: Batches are counted in images, by the strategy below, not in messages.
    flush_every = sys.maxsize
    #: Messages waiting in the broker queue; set by the app, called from the consumer.
    queue_length: Callable[[], int]

    def __init__(self) -> None:
        super().__init__()
        self._images = 0
        self._expected = 0

    def Strategy(self, task: Batches, app: Celery, consumer: Consumer) -> Callable:
        buffer_message = super().Strategy(task, app, consumer)

        def buffer_and_maybe_flush(message: Any, *args: Any, **kwargs: Any) -> None:
            buffer_message(message, *args, **kwargs)
            self._images += int(message.headers.get(IMAGES_HEADER, 1))
            self._expected -= 1
            if self._images >= self.max_images or self._queue_drained():
                self._do_flush()

        return buffer_and_maybe_flush

    def _queue_drained(self) -> bool:
        if self._expected > 0:
            return False
        try:
            self._expected = self.queue_length()
        except redis.RedisError as exc:
            log.warning("could not read the queue length, running the batch now: %s", exc)
            return True
        return self._expected == 0

    def _do_flush(self) -> None:
        # What was counted at the last look may have gone to other workers: look again next batch.
        self._images = 0
        self._expected = 0
        super()._do_flush()

    def flush(self, requests: Collection[Request]) -> Any:
        def on_return(result: object) -> None:
            if result == BATCH_DONE:
                for request in requests:
                    request.acknowledge()
            else:
                requeue(result)

        def requeue(reason: object) -> None:
            log.warning("delivering a batch of %d messages again: %s", len(requests), reason)
            for request in requests:
                request.reject(requeue=True)

        batch = ([SimpleRequest.from_request(request) for request in requests],)
        return self._pool.apply_async(
            apply_batches_task, (self, batch, 0, None), callback=on_return, error_callback=requeue,
        )
