"""The workers' task messages: Celery's own message for a list of jobs, laid out as the broker keeps it.

The API does not publish through kombu: it pushes each message itself, in the same Redis round
trip that admits the message's jobs (``JobStore.admit``). The message is Celery's protocol v2,
built by ``app.amqp.as_task_v2``, so any Celery worker reads it; ``inferq.broker.envelope`` lays it
out as kombu's Redis transport would have pushed it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from celery import Celery

from inferq import broker, messages, priorities


class TaskMessages:
    def __init__(self, celery: Celery, queue: str) -> None:
        self._celery = celery
        #: The base name of the queues, one a priority (``inferq.priorities.queue``).
        self._queue = queue

    def envelope(self, jobs: Sequence[messages.JobInput], priority: str) -> broker.Envelope:
        """The task message carrying ``jobs``, of ``priority``, and the queue it goes on."""
        task_id = str(uuid.uuid4())
        images = messages.image_count(jobs)
        # What Celery's logs and Flower show for a message, instead of its pixels.
        description = f"<{len(jobs)} jobs, {images} images>"
        message = self._celery.amqp.as_task_v2(task_id, messages.TASK_NAME, args=[messages.encode(jobs)],
                                               argsrepr=description, ignore_result=True)
        return broker.envelope(priorities.queue(self._queue, priority), message.body, properties=message.properties,
                               headers={**message.headers, messages.IMAGES_HEADER: images})
