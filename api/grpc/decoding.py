"""Requests that do not parse, refused as the client's error: INVALID_ARGUMENT with what protobuf
said, as the HTTP routes answer a body that is not JSON with a 400.

grpcio parses a request before any servicer or interceptor code sees it, and answers one that does
not parse with INTERNAL ("Exception deserializing request!"): the server's fault, by its code. So
this interceptor hands the servicer's handlers the request's bytes and parses them itself, with the
handler's own parser, before the servicer runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
from google.protobuf.message import DecodeError

from api.errors import ApiError
from api.grpc.handlers import Rebuilt, behaviour_of, rebuilt
from api.grpc.status import status_of


class DecodingInterceptor(grpc.ServerInterceptor):
    def __init__(self) -> None:
        self._rebuilt = Rebuilt(_parsing)

    def intercept_service(self, continuation, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return self._rebuilt(handler_call_details.method, handler)


def _parsing(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    parsing = _each if handler.request_streaming else _one
    return rebuilt(handler, parsing(handler.request_deserializer, behaviour_of(handler)), request_deserializer=None)


def _parsed(parse: Callable[[bytes], object], data: bytes, context: grpc.ServicerContext):
    try:
        return parse(data)
    except DecodeError as exc:
        context.abort_with_status(status_of(ApiError(400, f"the request does not parse: {exc}")))


def _one(parse: Callable, behaviour: Callable) -> Callable:
    def parsed(data: bytes, context: grpc.ServicerContext):
        return behaviour(_parsed(parse, data, context), context)

    return parsed


def _each(parse: Callable, behaviour: Callable) -> Callable:
    def parsed(datas: Iterator[bytes], context: grpc.ServicerContext):
        return behaviour((_parsed(parse, data, context) for data in datas), context)

    return parsed
