"""Errors as values: raised where they are found, rendered once (``api.error_responses``), always as JSON.

Every error response is ``{"error": "<what went wrong, for a person>", ...}`` with its status:
never an HTML page, never a traceback. Errors of other layers (Redis out of reach, a full queue,
an upload that is not an image) are raised as their own types and given their status here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import redis

from inferq.jobs import QueueFull, TenantOverQuota

log = logging.getLogger(__name__)

#: Seconds a client refused for an unreachable Redis is asked to wait, and for a full queue where no
#: drain rate is known yet.
RETRY_AFTER_S = 1


class SendFailed(Exception):
    """Redis did not take the message (or did not answer)."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None,
                 **details: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.details = details


def unavailable(message: str, **details: object) -> ApiError:
    """A 503 that asks the client to try again shortly."""
    return ApiError(503, message, headers={"Retry-After": str(RETRY_AFTER_S)}, **details)


RetryAfter = Callable[[QueueFull | TenantOverQuota, int], int]


def queue_error(error: Exception, retry_after_s: RetryAfter | None = None) -> ApiError:
    """The 503 for a refusal of the queue's layer: a full queue (``QueueFull``), or Redis out of reach
    (redis-py's errors, ``SendFailed``), whatever front end the request came through; the 429 for a
    tenant over its own limits (``TenantOverQuota``). ``retry_after_s(error, fallback)``: a full
    queue's or a tenant's Retry-After (default: the fallback)."""
    if isinstance(error, TenantOverQuota):
        refusal = ApiError(429, f"{error}; try again later", reason="tenant_quota", tenant=error.tenant.name,
                           limit=error.limit, headers={"Retry-After": str(RETRY_AFTER_S)})
        if retry_after_s is not None:
            refusal.headers["Retry-After"] = str(retry_after_s(error, RETRY_AFTER_S))
        return refusal
    if isinstance(error, QueueFull):
        which = f"model {error.model!r}: the" if error.model else "the"
        details = {"model": error.model} if error.model else {}
        refusal = unavailable(f"{which} {error.priority} queue is full ({error.depth} items waiting); "
                              "try again shortly", reason="queue_full", priority=error.priority, **details)
        if retry_after_s is not None:
            # When enough of the queue will have drained for this work to fit (``inferq.drain``).
            refusal.headers["Retry-After"] = str(retry_after_s(error, RETRY_AFTER_S))
        return refusal
    log.warning("Redis out of reach: %s", error)
    return unavailable("the broker (Redis) does not answer; try again shortly", reason="broker")


#: What the queue's layer raises for :func:`queue_error` to answer.
QUEUE_ERRORS = (QueueFull, TenantOverQuota, SendFailed, redis.RedisError)


#: What of the server's own a library's exception text may carry into a message: a file's path (a
#: library's own source, a model's file) or an object's address. Routes are never under these roots.
_INTERNAL = re.compile(r"(?<![\w./])/(?:home|usr|srv|opt|tmp|work|var|app|root|etc|proc|mnt|lib)(?:/[^\s'\"():,;]*)?"
                       r"|<[\w.]+ object at 0x[0-9a-f]+>")


def client_text(message: str) -> str:
    """``message`` as a client may read it: without the server's paths or object addresses (the
    log keeps the full text)."""
    return _INTERNAL.sub("<internal>", message)
