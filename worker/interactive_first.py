"""Interactive work answered between the model calls of a long batch, so that it never waits a whole one.

A worker runs a batch to its end before it claims again, and a bulk job's batch is long: a 1,024-image
job is sixteen model calls of 64. An interactive request queued meanwhile would wait for all of them.
So between two model calls of a batch the worker looks whether interactive work is queued for it
and, if so, takes it, answers it as a batch of its own, acknowledges it and goes back to the long
batch where it left off:

- **The look** is one ``EXISTS`` of each interactive queue's list and tenant ring (a list exists
  only while it holds something). It is sent as a call starts and its reply read as the call
  ends, so it costs the long batch no wait: what it tells is at most one call old.
- **The take** is kombu's ``Queue.get``, which ``inferq.broker`` makes the consumer's own claim
  script: each message is recorded as unacknowledged as it is taken, up to the batch size in items
  (the first model's), stopping when no interactive work is left.
- **Acks.** The interactive messages are acknowledged in the step that writes their outcomes
  (``inferq.broker.acking``), so a worker killed after it answered them never runs them again,
  or delivered again if answering them fails (the error then fails the long batch too, whose
  messages are delivered again as well). The long batch's messages stay unacknowledged until it
  ends, as before: its outputs so far are in memory only, so a worker that dies meanwhile leaves
  every message in the unacknowledged hash, from which each is delivered again after the
  visibility timeout; the long batch is run again from its first call and its outcomes written
  once, at its end (``inferq.jobs.JobStore.finish``).

Interactive work taken here is answered by the worker's own engine, not through Celery's request
machinery: no task events or time limits, as the batch task has none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis

from inferq import broker, priorities
from inferq.broker import INTERACTIVE_LEFT, tenant_ring
from inferq.messages import IMAGES_HEADER

log = logging.getLogger(__name__)


class InteractiveFirst:
    """``between_calls()``, called between two model calls of a batch: answers the interactive
    work queued for this worker, if any. ``connect``: a kombu connection to the broker (the Celery
    app's ``connection_for_read``); ``queues``: the queues this worker consumes; ``answer``: runs
    a batch of message bodies to their outcomes, with no ``between_calls`` of its own, so that
    nothing is taken while interactive work is answered; ``max_items``: the items taken at most
    at once."""

    def __init__(self, client: redis.Redis, connect: Callable[[], Any], queues: Callable[[], Sequence[str]],
                 answer: Callable[..., bool], max_items: int) -> None:
        self._redis = client
        self._connect = connect
        self._queues = queues
        self._answer = answer
        self._max_items = max_items
        self._connection: Any = None
        #: The Redis connection looks go on, held by this object, and whether a reply is unread on it.
        self._look: Any = None
        self._pending = False

    def between_calls(self) -> None:
        queues = [queue for queue in self._queues() if priorities.rank(queue) == 0]
        if not queues:
            return
        if not self._pending:  # the first look: answered at once
            self._send_look(queues)
        if self._read_look():
            self._take_and_answer(queues)
        self._send_look(queues)

    def close(self) -> None:
        self._drop_look()
        if self._connection is not None:
            self._connection.release()
            self._connection = None

    def _send_look(self, queues: list[str]) -> None:
        try:
            if self._look is None:
                self._look = self._redis.connection_pool.get_connection()
            self._look.send_command("EXISTS", *queues, *map(tenant_ring, queues))
        except redis.RedisError as exc:
            log.warning("could not look for interactive work: %s", exc)
            self._drop_look()
        else:
            self._pending = True

    def _read_look(self) -> bool:
        """What the look on its way says: whether interactive work was queued when it was sent."""
        if not self._pending:
            return False
        self._pending = False
        try:
            return bool(self._look.read_response())
        except redis.RedisError as exc:
            log.warning("could not look for interactive work: %s", exc)
            self._drop_look()
            return False

    def _drop_look(self) -> None:
        # A connection whose reply may be unread is never given back as it is.
        self._pending = False
        if self._look is not None:
            self._look.disconnect()
            self._redis.connection_pool.release(self._look)
            self._look = None

    def _channel(self) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection.default_channel

    def _take_and_answer(self, queues: list[str]) -> None:
        channel = self._channel()
        taken: list[Any] = []
        items = 0
        for queue in queues:
            while items < self._max_items:
                message = channel.basic_get(queue)
                if message is None:
                    break
                taken.append(message)
                items += int(message.headers.get(IMAGES_HEADER, 1))
                if message.delivery_info.get(INTERACTIVE_LEFT) == 0:
                    break
        if not taken:
            return
        held = broker.held_messages(channel, [message.delivery_tag for message in taken])
        try:
            acked = self._answer([_task_argument(message) for message in taken], acks=held)
        except BaseException:
            log.warning("delivering %d interactive messages again: answering them failed", len(taken))
            for message in taken:
                message.reject(requeue=True)
            raise
        if acked and held is not None:
            # Their finish removed them from Redis with the outcomes: only the in-memory books are left.
            broker.acked_already(channel, held.tags)
            for message in taken:
                message.ack()
            return
        with broker.acks_together(channel):
            for message in taken:
                message.ack()


def _task_argument(message: Any) -> object:
    """The batch task's argument in a task message (Celery's protocol 2: ``[args, kwargs, embed]``,
    or protocol 1's dict); else the body as it is, which the batch fails as not one of ours."""
    try:
        body = message.decode()
    except Exception:  # noqa: BLE001 - whatever kombu raises for a body it cannot decode
        return None
    args = body.get("args") if isinstance(body, dict) else (body[0] if isinstance(body, list) and body else None)
    return args[0] if isinstance(args, (list, tuple)) and args else body
