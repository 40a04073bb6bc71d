"""How every inferq process connects to Redis."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def connect(url: str, *, socket_timeout_s: float = 10.0) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` for TLS, ``unix://``; passwords in the URL).

    ``socket_timeout_s`` bounds a wait on a Redis that stopped answering; it must exceed the longest
    blocking call made with the client. A failed command is retried twice within half a second,
    enough to ride over a dropped connection but not to keep a request hanging on a Redis that is
    down: that is a quick 503.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_timeout=socket_timeout_s,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=2),
    )
