"""The API key over gRPC: ``authorization: Bearer <key>`` metadata, as tritonclient.grpc sends it
(``headers={"authorization": ...}``) and as the HTTP API takes it in its header.

Every RPC needs it when API_KEY is set, but health checking (``grpc.health.v1``): orchestrators
probe without credentials, and it says only serving or not, as ``/healthz`` and ``/readyz`` do.
"""

from __future__ import annotations

import hmac

import grpc

from api.errors import ApiError
from api.grpc.status import status_of

#: Services answered without the key.
OPEN_SERVICES = ("/grpc.health.v1.Health/",)
MESSAGE = "missing or wrong API key: send 'authorization: Bearer <key>' metadata"


class ApiKeyInterceptor(grpc.ServerInterceptor):
    def __init__(self, api_key: str) -> None:
        self._expected = f"Bearer {api_key}".encode()
        refusal = status_of(ApiError(401, MESSAGE))

        def refuse(request, context: grpc.ServicerContext):
            context.abort_with_status(refusal)

        self._refused = {
            (False, False): grpc.unary_unary_rpc_method_handler(refuse),
            (False, True): grpc.unary_stream_rpc_method_handler(refuse),
            (True, False): grpc.stream_unary_rpc_method_handler(refuse),
            (True, True): grpc.stream_stream_rpc_method_handler(refuse),
        }

    def intercept_service(self, continuation, handler_call_details: grpc.HandlerCallDetails):
        if handler_call_details.method.startswith(OPEN_SERVICES):
            return continuation(handler_call_details)
        given = next((value for key, value in handler_call_details.invocation_metadata or ()
                      if key == "authorization"), "")
        # Constant time, as over HTTP: how much of a guess matched must not show in how long a refusal takes.
        if hmac.compare_digest(given.encode() if isinstance(given, str) else given, self._expected):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:  # an unknown method stays UNIMPLEMENTED
            return None
        return self._refused[(handler.request_streaming, handler.response_streaming)]
