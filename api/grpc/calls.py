"""What every servicer's RPC shares: it runs in the app's context, and what it raises is answered
as a gRPC status, the HTTP route's refusal (``api.grpc.status``)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import grpc

from api.errors import QUEUE_ERRORS, ApiError, queue_error
from api.grpc.status import status_of
from api.runtime import runtime

log = logging.getLogger(__name__)


def answered(method: Callable) -> Callable:
    """The RPC run in the context of its servicer's ``app``, its refusals as statuses."""

    @functools.wraps(method)
    def call(self, request, context: grpc.ServicerContext):
        with self.app.app_context():
            try:
                return method(self, request, context)
            except Exception as error:  # noqa: BLE001 (each is answered: refusal_of says how)
                refusal = refusal_of(error, method.__name__)
        context.abort_with_status(status_of(refusal))

    return call


def refusal_of(error: Exception, where: str) -> ApiError:
    """What an RPC answers for ``error``: the HTTP route's refusal, or a 500 that tells nothing."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, QUEUE_ERRORS):
        # Retry-After (as retry info) from the lane's drain rate, as the HTTP routes answer.
        return queue_error(error, runtime().queue.retry_after_s)
    log.error("unhandled error in %s", where, exc_info=error)
    return ApiError(500, "internal error; the server log has the details")


def timeout_s(context: grpc.ServicerContext, asked_s: float | None = None) -> float | None:
    """The job's deadline: the sooner of ``asked_s`` (the request's own, if any) and the call's
    deadline, past which nobody reads the answer."""
    remaining = context.time_remaining()
    if remaining is None:
        return asked_s
    return remaining if asked_s is None else min(asked_s, remaining)
