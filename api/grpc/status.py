"""An :class:`api.errors.ApiError` as a gRPC status: the HTTP route's message, its status's code.

The message is the one the HTTP route sends in ``{"error": ...}``, with the server's paths left out
as there (``api.errors.client_text``). A refusal that asks the client to come back (a 503: queue
full, Redis out of reach) carries ``google.rpc.RetryInfo`` in the status details, the standard
place gRPC clients look for it, and ``retry-after`` metadata as HTTP's header says it; every refusal
with a reason (``queue_full``, ``broker``, ...) carries it as a ``google.rpc.ErrorInfo``.
"""

from __future__ import annotations

import dataclasses

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from api.errors import RETRY_AFTER_S, ApiError, client_text

#: Each HTTP status the API answers as the gRPC code that means the same (Triton's own server answers
#: bad input as INVALID_ARGUMENT, an unknown model as NOT_FOUND, UNAVAILABLE for "try again").
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
DOMAIN = "inferq"
DETAILS_KEY = "grpc-status-details-bin"


@dataclasses.dataclass(frozen=True)
class Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def code_of(status: int) -> grpc.StatusCode:
    return CODES.get(status, grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL)


def status_of(error: ApiError) -> Status:
    code = code_of(error.status)
    message = client_text(error.message)
    details: list[any_pb2.Any] = []
    metadata: list[tuple[str, str | bytes]] = []
    if "Retry-After" in error.headers:
        # The same delay as the header, which a full queue's drain estimate sets (``api.errors``).
        delay_s = int(error.headers["Retry-After"]) if error.headers["Retry-After"].isdigit() else RETRY_AFTER_S
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=delay_s))))
        metadata.append(("retry-after", error.headers["Retry-After"]))
    if error.details:
        reason = str(error.details.get("reason", "")).upper()
        details.append(_packed(error_details_pb2.ErrorInfo(
            reason=reason, domain=DOMAIN,
            metadata={name: str(value) for name, value in error.details.items() if name != "reason"})))
    if details:
        rich = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
        metadata.append((DETAILS_KEY, rich.SerializeToString()))
    return Status(code, message, tuple(metadata))


def _packed(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
