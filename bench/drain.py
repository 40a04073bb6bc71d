"""Workers draining a queue filled before they started: messages and images per second, and what
each message cost Redis.

The queue is filled as the API fills it (jobs admitted to the store and their Celery message pushed,
one job a message), beside the real one; once every worker waits for work, it is moved into place.
The rate runs from the first batch's start to the last job's end, read from the job store. Redis's
CPU time and commands (script runs and the commands they make, as INFO counts them) are read
around the fill and around the drain.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable

import numpy as np
import redis

from bench.redis_usage import RedisUsage
from bench.systems import SERVED_MODEL, workers_only
from inferq import keys, messages, mnist_contract, priorities
from inferq.broker import bell
from inferq.celery_app import make_celery
from inferq.jobs import JobStore
from inferq.priorities import BULK
from inferq.redis_connection import connect
from inferq.settings import Settings
from inferq.task_messages import TaskMessages


@dataclasses.dataclass
class DrainResult:
    messages: int
    images_per_message: int
    workers: int
    seconds: float
    messages_per_s: float
    images_per_s: float
    mean_batch: float
    #: Redis's CPU microseconds and commands per message: to admit it (the API's share), and to
    #: take, run and acknowledge it (the workers' share, with their heartbeats meanwhile).
    redis_cpu_us_admit: float
    redis_cpu_us_drain: float
    commands_admit: float
    commands_drain: float
    #: The drain's commands per message, by name, the most frequent first.
    drain_commands_by_name: dict[str, float]


def drain(redis_url: str, model_dir: str, images: np.ndarray, count: int, per_message: int, *, workers: int = 1,
          timeout_s: float = 600) -> DrainResult:
    settings = Settings(redis_url=redis_url)
    client = connect(redis_url, sentinel_master=settings.redis_sentinel_master)
    store = JobStore(client, result_ttl_s=settings.result_ttl_s, depth_limits=settings.depth_limits)
    task_messages = TaskMessages(make_celery(settings), settings)
    # The queue of the model the workers serve (``bench.systems``), at bulk priority.
    queue = priorities.queue(settings.model_queue(SERVED_MODEL), BULK)
    # Filled beside the queue and moved into place once every worker waits on it, so that all of
    # them drain it from the start.
    staging = f"{queue}.staging"
    # As the API queues images for the MNIST input: uint8 pixels, [images, 784], under its name.
    pixels = [{mnist_contract.SIGNATURE_INPUT: images[i:i + per_message].reshape(-1, mnist_contract.N_INPUT)}
              for i in range(0, 50 * per_message, per_message)]
    job_ids = []
    before_fill = RedisUsage.read(client)
    for n in range(count):
        job_id = str(uuid.uuid4())
        envelope = task_messages.envelope(SERVED_MODEL, [messages.JobInput(job_id, pixels[n % 50], None, BULK)],
                                          BULK)
        store.admit([(job_id, [""] * per_message)], model=SERVED_MODEL, priority=BULK,
                    enqueue=dataclasses.replace(envelope, queue_key=staging))
        job_ids.append(job_id)
    admitting = RedisUsage.read(client).since(before_fill)

    with workers_only(redis_url, model_dir, workers=workers):
        deadline = time.monotonic() + timeout_s
        _wait(lambda: _waiting_on_bells(client) >= workers, deadline, "the workers to wait for work")
        before_drain = RedisUsage.read(client)
        with client.pipeline(transaction=True) as pipe:
            pipe.rename(staging, queue)
            pipe.rename(bell(staging), bell(queue))
            pipe.execute()
        _wait(lambda: store.queued_images([SERVED_MODEL])[SERVED_MODEL][BULK] == 0, deadline,
              "the workers to drain the queue")
        draining = RedisUsage.read(client).since(before_drain)

    with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "started_at", "finished_at", "status")
        records = pipe.execute()
    assert all(status == b"done" for _, _, status in records), "a drained job did not finish"
    started = min(float(started) for started, _, _ in records)
    finished = max(float(finished) for _, finished, _ in records)
    batches = len({float(started) for started, _, _ in records})
    seconds = finished - started
    return DrainResult(count, per_message, workers, seconds, count / seconds, count * per_message / seconds,
                       count * per_message / batches, admitting.cpu_s / count * 1e6, draining.cpu_s / count * 1e6,
                       admitting.total_commands / count, draining.total_commands / count,
                       {name: round(calls / count, 2) for name, calls in
                        sorted(draining.commands.items(), key=lambda item: -item[1])})


def _waiting_on_bells(client: redis.Redis) -> int:
    """Clients blocked in BLPOP: idle workers (``inferq.broker``)."""
    return sum(connection.get("cmd") == "blpop" for connection in client.client_list())


def _wait(condition: Callable[[], bool], deadline: float, what: str) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
