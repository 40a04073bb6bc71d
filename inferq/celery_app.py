"""The Celery app both sides build from the same settings: the API to send, the workers to consume."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from inferq import broker
from inferq.messages import TASK_NAME
from inferq.settings import Settings


def make_celery(settings: Settings) -> Celery:
    app = Celery("inferq", broker=settings.redis_url, backend=settings.redis_url)
    app.conf.update(
        broker_transport=broker.TRANSPORT,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            # kombu sweeps for messages of dead workers every 10 x 10 s by default; sweep often
            # enough that they come back about VISIBILITY_TIMEOUT_S after they were taken.
            "unacked_restore_interval": max(1, settings.visibility_timeout_s // 6),
            "unacked_restore_throttle": 1,
            # A sweeper killed mid-sweep holds its lock until this expires (kombu: five minutes).
            "unacked_mutex_expire": max(1, min(settings.visibility_timeout_s, 30)),
            # One list per queue, so that a worker can take a message safely (inferq.broker).
            "priority_steps": [0],
            # Without a socket timeout a publish on a connection that died silently never returns.
            "socket_timeout": 10,
            "socket_connect_timeout": 2,
        },
        broker_connection_retry_on_startup=True,
        # JSON only: a pickled message is code, and the broker is reachable by more than us.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_queues=[Queue(settings.queue_name)],
        task_default_queue=settings.queue_name,
        task_routes={TASK_NAME: {"queue": settings.queue_name}},
        # Outcomes go to the job store, a batch at a time, not to the result backend.
        task_ignore_result=True,
        result_expires=settings.result_ttl_s,
        # A message is acknowledged only once its jobs' outcomes are written; a worker that dies
        # first leaves it to be delivered again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # Unacknowledged messages count against the prefetch limit, and a batch holds up to
        # MAX_BATCH_SIZE of them while it fills: leave room for the next one.
        worker_prefetch_multiplier=2 * settings.max_batch_size,
        # A broker that is down must turn into a quick 503, not a request hanging in retries.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
    )
    return app
