"""A worker draining a queue filled before it started: messages and images per second.

The queue is filled as the API fills it (jobs admitted to the store and their Celery message pushed, one job a message),
then a worker starts; the rate runs from the first batch's start to the last job's end, read from
the job store, so the worker's start-up is not counted.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import numpy as np

from api.task_messages import TaskMessages
from bench.systems import workers_only
from inferq import keys, messages
from inferq.celery_app import make_celery
from inferq.jobs import JobStore
from inferq.priorities import INTERACTIVE
from inferq.redis_connection import connect
from inferq.settings import Settings


@dataclasses.dataclass
class DrainResult:
    messages: int
    images_per_message: int
    seconds: float
    messages_per_s: float
    images_per_s: float
    mean_batch: float


def drain(redis_url: str, model_dir: str, images: np.ndarray, count: int, per_message: int,
          timeout_s: float = 600) -> DrainResult:
    settings = Settings(redis_url=redis_url)
    client = connect(redis_url)
    store = JobStore(client, result_ttl_s=settings.result_ttl_s, depth_limits=settings.depth_limits)
    task_messages = TaskMessages(make_celery(settings), settings.queue_name)
    pixels = [images[i:i + per_message].tobytes() for i in range(0, 50 * per_message, per_message)]
    job_ids = []
    for n in range(count):
        job_id = str(uuid.uuid4())
        envelope = task_messages.envelope([messages.JobInput(job_id, pixels[n % 50], None)], INTERACTIVE)
        store.admit([(job_id, [""] * per_message)], priority=INTERACTIVE, enqueue=envelope)
        job_ids.append(job_id)

    with workers_only(redis_url, model_dir):
        deadline = time.monotonic() + timeout_s
        while sum(store.queued_images().values()) > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not drain the queue in {timeout_s:g} s")
            time.sleep(0.1)

    with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "started_at", "finished_at", "status")
        records = pipe.execute()
    assert all(status == b"done" for _, _, status in records), "a drained job did not finish"
    started = min(float(started) for started, _, _ in records)
    finished = max(float(finished) for _, finished, _ in records)
    batches = len({float(started) for started, _, _ in records})
    seconds = finished - started
    return DrainResult(count, per_message, seconds, count / seconds, count * per_message / seconds,
                       count * per_message / batches)
