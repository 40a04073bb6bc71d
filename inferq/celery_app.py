"""The Celery app both sides build from the same settings: the API to send, the workers to consume."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from celery import Celery
from kombu import Queue

from inferq import broker
from inferq.messages import TASK_NAME
from inferq.redis_connection import names_sentinels, sentinel_options
from inferq.settings import Settings


def make_celery(settings: Settings, *, queues: Sequence[str] = ()) -> Celery:
    """The app; a worker's consumes ``queues`` (the API pushes its messages itself, to any model's)."""
    broker.check_kombu()
    app = Celery("inferq", broker=settings.redis_url, backend=settings.redis_url)
    # Where REDIS_URL names Sentinels, kombu and Celery's backend ask them for this master.
    sentinel = ({"master_name": settings.redis_sentinel_master, "sentinel_kwargs": sentinel_options()}
                if names_sentinels(settings.redis_url) else {})
    app.conf.update(
        broker_transport=broker.transport(settings.redis_url),
        broker_transport_options={
            **sentinel,
            "visibility_timeout": settings.visibility_timeout_s,
            # kombu sweeps for messages of dead workers every 10 x 10 s by default; sweep often
            # enough that they come back about VISIBILITY_TIMEOUT_S after they were taken.
            "unacked_restore_interval": max(1, settings.visibility_timeout_s // 6),
            "unacked_restore_throttle": 1,
            # A sweeper killed mid-sweep holds its lock until this expires (kombu: five minutes).
            "unacked_mutex_expire": max(1, min(settings.visibility_timeout_s, 30)),
            broker.BULK_MAX_WAIT_OPTION: settings.bulk_max_wait_s,
            broker.FAIR_SHARE_QUANTUM_OPTION: settings.max_batch_size,
            # One list per queue, so that a worker can take a message safely (inferq.broker).
            "priority_steps": [0],
            # kombu base64-encodes every body by default; ours are JSON already (pixels included, as
            # base64): a second encoding would cost a third more bytes and a decode per message.
            "body_encoding": None,
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
        # One queue a model and priority; a worker consumes its models' (interactive work first).
        task_queues=[Queue(queue) for queue in queues] or None,
        task_default_queue=settings.model_queue(settings.default_model),
        task_routes={TASK_NAME: {"queue": settings.model_queue(settings.default_model)}},
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
        broker_use_ssl=_tls(settings.redis_url),
        redis_backend_use_ssl=_tls(settings.redis_url),
        result_backend_transport_options=sentinel,
        # A broker that is down must turn into a quick 503, not a request hanging in retries.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
    )
    return app


_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def _tls(url: str) -> dict | None:
    """TLS options for a ``rediss://`` URL: certificates verified unless its query says otherwise.

    kombu would otherwise fall back to not verifying them, and Celery's result backend refuses a
    ``rediss://`` URL without ``ssl_cert_reqs``.
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return None
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    options: dict = {"ssl_cert_reqs": _CERT_REQS[query.get("ssl_cert_reqs", "required").lower().removeprefix("cert_")]}
    for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if key in query:
            options[key] = query[key]
    return options
