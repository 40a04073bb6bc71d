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


class Rebuilt:
    """Each method's rebuilt handler, made once and handed out again while the handler it wraps is
    the same: grpcio asks the interceptors for a handler on every call, and the servicers' handlers
    never change, so building them again (closures, a handler) is work for nothing on every call.
    One handler a method, so it is bounded by the methods served; a method whose inner handler
    changes (a call with the API key after one without) is built again for it."""

    def __init__(self, build: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]) -> None:
        self._build = build
        # Two threads that build one method's at once each store theirs: either serves.
        self._built: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def __call__(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        entry = self._built.get(method)
        if entry is not None and entry[0] is handler:
            return entry[1]
        built = self._build(method, handler)
        self._built[method] = (handler, built)
        return built
