"""Puts inference messages on the workers' queue: Celery's task message, published by one kombu producer.

Celery's ``send_task`` takes a producer from its pool, routes the task, declares its queue and wraps
the publish in its retry machinery on every call: 314 µs of CPU a message on this machine. Building
the same message with ``app.amqp.as_task_v2`` (Celery's own protocol v2, so any Celery worker reads
it) and publishing it straight to the queue with one kombu producer costs 155 µs, and the
publish is retried as ``send_task`` would (``task_publish_retry_policy``).

One producer serves a process: the submitter sends one message at a time. Given ``push``, the
message is not pushed by kombu but handed to ``push`` (``inferq.broker.pushing_with``), which the
submitter uses to admit a message's jobs and push it in one Redis round trip.
"""

from __future__ import annotations

import contextlib
import uuid

from celery import Celery
from kombu import Producer

from inferq import broker, messages


class TaskPublisher:
    def __init__(self, celery: Celery, queue: str) -> None:
        self._celery = celery
        self._queue = queue
        self._producer: Producer | None = None

    def publish(self, body: dict, *, images: int, description: str, push: broker.Push | None = None) -> None:
        """Send the task message carrying ``body`` (``images`` images); raises kombu's errors.

        With ``push``, kombu hands the serialized message to ``push(queue_key, message)`` instead
        of pushing it itself.
        """
        task_id = str(uuid.uuid4())
        message = self._celery.amqp.as_task_v2(task_id, messages.TASK_NAME, args=[body], argsrepr=description,
                                               ignore_result=True)
        pushing = broker.pushing_with(push) if push is not None else contextlib.nullcontext()
        with pushing:
            self._producer_for_this_process().publish(
                message.body,
                # The default exchange routes by queue name: no exchange lookup in Redis per message.
                exchange="",
                routing_key=self._queue,
                headers={**message.headers, messages.IMAGES_HEADER: images},
                serializer="json",
                # A push of our own is retried by redis-py, as every Redis call is; kombu's retry
                # would run the admission around it a second time.
                retry=push is None,
                retry_policy=self._celery.conf.task_publish_retry_policy,
                **message.properties,
            )

    def _producer_for_this_process(self) -> Producer:
        # Built on first use, after gunicorn has forked and gevent has patched sockets.
        if self._producer is None:
            self._producer = self._celery.amqp.Producer(self._celery.connection_for_write(), auto_declare=False)
        return self._producer
