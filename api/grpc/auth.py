"""The API key over gRPC: ``authorization: Bearer <key>`` metadata, as tritonclient.grpc sends it
(``headers={"authorization": ...}``) and as the HTTP API takes it in its header.

Every RPC needs it when API_KEY is set, but health checking (``grpc.health.v1``): orchestrators
probe without credentials, and it says only serving or not, as ``/healthz`` and ``/readyz`` do.
"""

from __future__ import annotations

import grpc

from api.errors import ApiError
from api.grpc.handlers import MAKERS
from api.grpc.status import status_of
from inferq.tenants import Tenant, TenantDirectory

#: Services answered without the key.
OPEN_SERVICES = ("/grpc.health.v1.Health/",)
MESSAGE = "missing or wrong API key: send 'authorization: Bearer <key>' metadata"


def authorization(metadata) -> str | bytes | None:
    """The ``authorization`` value of a call's metadata, if it has one."""
    return next((value for key, value in metadata or () if key == "authorization"), None)


def tenant_of(tenants: TenantDirectory, metadata) -> Tenant | None:
    """The tenant whose key a call's metadata carries (None: none or a wrong one)."""
    return tenants.tenant_for_authorization(authorization(metadata))


class ApiKeyInterceptor(grpc.ServerInterceptor):
    def __init__(self, tenants: TenantDirectory) -> None:
        self._tenants = tenants
        refusal = status_of(ApiError(401, MESSAGE))

        def refuse(request, context: grpc.ServicerContext):
            context.abort_with_status(refusal)

        self._refused = {kind: make(refuse) for kind, make in MAKERS.items()}

    def intercept_service(self, continuation, handler_call_details: grpc.HandlerCallDetails):
        if handler_call_details.method.startswith(OPEN_SERVICES):
            return continuation(handler_call_details)
        # Constant time, as over HTTP (TenantDirectory): how much of a guess matched must not show in how
        # long a refusal takes.
        if tenant_of(self._tenants, handler_call_details.invocation_metadata) is not None:
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:  # an unknown method stays UNIMPLEMENTED
            return None
        return self._refused[(handler.request_streaming, handler.response_streaming)]
