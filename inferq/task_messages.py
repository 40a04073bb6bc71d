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
from inferq.settings import Settings


class TaskMessages:
    def __init__(self, celery: Celery, settings: Settings) -> None:
        self._celery = celery
        self._settings = settings

    def envelope(self, model: str, jobs: Sequence[messages.JobInput], priority: str, *,
                 store_large: bool = False, tenant: str | None = None) -> broker.Envelope:
        """The task message carrying ``jobs`` for ``model``, of ``priority``, and the queue it goes on;
        ``store_large``: large tensors are left out, stored with the jobs (``inferq.messages``);
        ``tenant``: the jobs' tenant, whose list of the queue it goes on (None: the queue's own)."""
        task_id = str(uuid.uuid4())
        items = messages.image_count(jobs)
        # What Celery's logs and Flower show for a message, instead of its tensors.
        description = f"<{model}: {len(jobs)} jobs, {items} items>"
        body = messages.encode(model, jobs, store_large=store_large)
        # kwargsrepr: what Celery would write for no kwargs, given so that it does not repr them each message.
        message = self._celery.amqp.as_task_v2(task_id, messages.TASK_NAME, args=[body], argsrepr=description,
                                               kwargsrepr="{}", ignore_result=True)
        queue = priorities.queue(self._settings.model_queue(model), priority)
        queued_at = min((job.queued_at for job in jobs if job.queued_at is not None), default=None)
        return broker.envelope(queue, message.body, properties=message.properties, queued_at=queued_at,
                               tenant=tenant, items=items, headers={**message.headers, messages.IMAGES_HEADER: items,
                                        messages.MODEL_HEADER: model})
