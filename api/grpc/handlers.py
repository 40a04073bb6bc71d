"""A gRPC method handler of a given kind, or rebuilt around another behaviour: the one way inferq's
interceptors make or wrap a call's handler, whatever its kind (unary or streaming, each way)."""

from __future__ import annotations

from collections.abc import Callable

import grpc

#: grpcio's handler makers, by (request streaming, response streaming).
MAKERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def behaviour_of(handler: grpc.RpcMethodHandler) -> Callable:
    """The function that answers the call, whichever of the four kinds it is."""
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream


def rebuilt(handler: grpc.RpcMethodHandler, behaviour: Callable, *,
            request_deserializer: Callable | None) -> grpc.RpcMethodHandler:
    """``handler``'s kind and response serializer, with ``behaviour`` answering the call and requests
    parsed by ``request_deserializer`` (None: the behaviour gets the request's bytes)."""
    make = MAKERS[(handler.request_streaming, handler.response_streaming)]
    return make(behaviour, request_deserializer=request_deserializer, response_serializer=handler.response_serializer)
