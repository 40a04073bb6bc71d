"""celery-batches' ``Batches`` task, with batches counted in images and no wait behind an empty queue.

Use it for a task whose every call costs much more than each item it handles (a model call) and
whose messages carry a varying number of items, told by the ``inferq_images`` header, for one of
several models, told by the ``inferq_model`` header. A batch is run, whichever comes first:

- when it holds its model's batch size in items of one model (``batch_limits``);
- as soon as the broker queue behind it is empty, since nothing more is coming to wait for: a
  lone image on an idle system is answered at once;
- its first model's wait after its first message came, unless more messages are already queued then: the
  wait is for new work to arrive, and work that is already there is taken until the batch is full.
  Under a saturated queue that keeps batches full (a consumer fetches each message on its own,
  a millisecond or two apiece), at the cost of the first message waiting while the rest are fetched;
- as soon as it holds interactive work and no more interactive work is queued: interactive work
  does not wait to be topped up with bulk work (``inferq.priorities``), whose batches are the
  large and slow ones.

The queue is looked at (one LLEN) when a batch starts and again only once every message seen at
the last look has come in, so under load, when the queue is long, it is rarely asked.
celery-batches buffers the requests and runs the batch in the pool; its own periodic flush is
replaced by the per-batch deadline above.

Messages are acknowledged in the round trip that writes their batch's outcomes: the task is
handed them as the broker holds them (``inferq.broker.held_messages``) and the job store's finish
removes them from Redis with the outcomes, in one script; what is left, once the task returns
:data:`BATCH_ACKED`, is kombu's in-memory bookkeeping. A batch that finished no job (nothing in it
was ours) returns :data:`BATCH_DONE`, and its messages are acknowledged in one round trip
(``inferq.broker.acks_together``). If the batch fails, or the pool process running it dies before
its finish, they are rejected back onto the queue for another try.

This module is the one place inferq relies on celery-batches' internals
(:data:`CELERY_BATCHES_INTERNALS`), written for the versions in :data:`TESTED_CELERY_BATCHES`;
``tests/contracts/test_celery_batches.py`` fails, naming what to re-check, when it moves.
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

from inferq import broker, priorities
from inferq.broker import INTERACTIVE_LEFT, QUEUE_LENGTH
from inferq.messages import IMAGES_HEADER, MODEL_HEADER

log = logging.getLogger(__name__)

#: The celery-batches versions this module was written and tested for.
TESTED_CELERY_BATCHES = ("0.11",)

#: What of celery-batches' this module relies on beyond its public API, for the contract test.
CELERY_BATCHES_INTERNALS = (
    "Batches._do_flush() runs flush() on the buffered requests and empties the buffer",
    "Batches._pool, the consumer's pool, set by Batches.Strategy",
    "celery_batches.trace.apply_batches_task(task, args, loglevel, logfile), which calls task(*args) and "
    "answers its result: the batch's held messages travel as args' second item",
)

#: What the task's ``run`` returns once its batch's outcomes are written.
BATCH_DONE = "done"
#: What it returns once its batch's outcomes are written and its messages acknowledged with them.
BATCH_ACKED = "done and acknowledged"


class ItemBatches(Batches):
    abstract = True

    #: Images of one model in a batch at which it is run, where the model does not say.
    max_items = 64
    #: Seconds after its first message at which a batch is run however full, unless more are
    #: queued, where the model does not say.
    max_wait_s = 0.005
    #: Messages waiting in the broker queues; set by the app, called from the consumer.
    queue_length: Callable[[], int]

    def batch_limits(self, model: str) -> tuple[int, float]:
        """A model's batch size and wait; the app replaces it with the models' configs."""
        return self.max_items, self.max_wait_s

    # celery-batches' own triggers, off: batches are counted in images and timed per batch, below.
    flush_every = sys.maxsize
    flush_interval = 24 * 3600

    def __init__(self) -> None:
        super().__init__()
        self._images: dict[str, int] = {}
        self._interactive = False
        self._expected = 0
        self._deadline: Any = None
        self._wait_s = self.max_wait_s

    def Strategy(self, task: Batches, app: Celery, consumer: Consumer) -> Callable:
        buffer_message = super().Strategy(task, app, consumer)
        self._timer = consumer.timer

        def buffer_and_maybe_flush(message: Any, *args: Any, **kwargs: Any) -> None:
            buffer_message(message, *args, **kwargs)
            model = str(message.headers.get(MODEL_HEADER, ""))
            images = self._images[model] = self._images.get(model, 0) + int(message.headers.get(IMAGES_HEADER, 1))
            max_items, max_wait_s = self.batch_limits(model)
            self._interactive = self._interactive or self._is_interactive(message)
            if (images >= max_items or self._nothing_more_queued(message)
                    or (self._interactive and message.delivery_info.get(INTERACTIVE_LEFT) == 0)):
                self._do_flush()
            elif self._deadline is None:
                # Only a batch that waits needs a timer: at low load none is set and cancelled per batch.
                self._wait_s = max_wait_s
                self._deadline = self._timer.call_after(max_wait_s, self._deadline_reached)

        return buffer_and_maybe_flush

    @staticmethod
    def _is_interactive(message: Any) -> bool:
        return priorities.rank(message.delivery_info.get("routing_key") or "") == 0

    def _nothing_more_queued(self, message: Any) -> bool:
        told = message.delivery_info.get(QUEUE_LENGTH)
        if told is not None:
            return told == 0
        self._expected -= 1
        if self._expected > 0:
            return False
        self._expected = self._queued()
        return self._expected == 0

    def _queued(self) -> int:
        """Messages waiting in the queue; 0 if Redis does not say, so that the batch runs now."""
        try:
            return self.queue_length()
        except redis.RedisError as exc:
            log.warning("could not read the queue length, running the batch now: %s", exc)
            return 0

    def _deadline_reached(self) -> None:
        self._deadline = None
        if self._queued() > 0:
            self._deadline = self._timer.call_after(self._wait_s, self._deadline_reached)
        else:
            self._do_flush()

    def _do_flush(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._images = {}
        self._interactive = False
        # What was counted at the last look may have gone to other workers: look again next batch.
        self._expected = 0
        super()._do_flush()

    def flush(self, requests: Collection[Request]) -> Any:
        channel = _channel(requests)
        tags = [request.message.delivery_tag for request in requests if getattr(request, "message", None)]
        held = broker.held_messages(channel, tags) if len(tags) == len(requests) else None

        def on_return(result: object) -> None:
            if result == BATCH_ACKED and held is not None:
                # The finish removed them from Redis with the outcomes: the in-memory books are left,
                # for the acks the consumer makes on its next loop.
                broker.acked_already(channel, held.tags)
                for request in requests:
                    request.acknowledge()
            elif result in (BATCH_DONE, BATCH_ACKED):
                # One round trip for the batch's acks, where kombu would make one a message.
                with broker.acks_together(channel):
                    for request in requests:
                        request.acknowledge()
            else:
                requeue(result)

        def requeue(reason: object) -> None:
            log.warning("delivering a batch of %d messages again: %s", len(requests), reason)
            for request in requests:
                request.reject(requeue=True)

        batch = ([SimpleRequest.from_request(request) for request in requests], held)
        return self._pool.apply_async(
            apply_batches_task, (self, batch, 0, None), callback=on_return, error_callback=requeue,
        )


def _channel(requests: Collection[Request]) -> object:
    """The kombu channel the batch's messages came by (one consumer's: the same for all), if any."""
    for request in requests:
        return getattr(getattr(request, "message", None), "channel", None)
    return None
