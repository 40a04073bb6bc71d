"""``inference.GRPCInferenceService``: each RPC done by ``api.kserve.open_inference``, as the HTTP route does it.

Every call runs in the app's context (the queue, the served models and the settings of
``api.app.create_app``: the HTTP API's own), and every refusal is the HTTP route's, as a gRPC status
(``api.grpc.status``). The call's deadline is the job's (as HTTP's ``timeout`` parameter): work
whose caller has stopped waiting is never run. ``ModelStreamInfer`` answers a stream's requests
one after another, each refusal as the stream's ``error_message`` (as Triton does), the stream
going on. The RPCs inferq does not serve (statistics, model control, shared memory, trace and log
settings) answer UNIMPLEMENTED, grpcio's default.
"""

from __future__ import annotations

import grpc
from flask import Flask
from google.protobuf import json_format

from api.errors import ApiError, client_text
from api.grpc import codec
from api.grpc.calls import answered, refusal_of, tenant, timeout_s
from api.grpc.protos import grpc_service_pb2 as pb
from api.grpc.protos import grpc_service_pb2_grpc
from api.kserve import open_inference
from api.kserve.codec import encode_outputs
from api.queue.scheduling import chosen, triton_timeout_s
from api.runtime import runtime
from inferq.priorities import INTERACTIVE


def _version(text: str) -> int | None:
    """A request's ``version``: empty for the newest, else a number, as the HTTP route's path has it."""
    if text == "":
        return None
    if not text.isdigit():
        raise ApiError(400, f"version must be a number (or empty: the newest), got {text!r}")
    return int(text)


class InferenceServicer(grpc_service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, app: Flask) -> None:
        self.app = app

    @answered
    def ServerLive(self, request, context):  # noqa: N802 (the protocol's names)
        return pb.ServerLiveResponse(live=True)

    @answered
    def ServerReady(self, request, context):  # noqa: N802
        return pb.ServerReadyResponse(ready=open_inference.not_ready(runtime().settings.default_model) is None)

    @answered
    def ModelReady(self, request, context):  # noqa: N802
        # As over HTTP, an unknown model or version is not ready, not an error.
        return pb.ModelReadyResponse(ready=open_inference.not_ready(request.name, _version(request.version)) is None)

    @answered
    def ServerMetadata(self, request, context):  # noqa: N802
        return json_format.ParseDict(open_inference.server_metadata(), pb.ServerMetadataResponse())

    @answered
    def ModelMetadata(self, request, context):  # noqa: N802
        metadata = open_inference.model_metadata(request.name, _version(request.version))
        return json_format.ParseDict(metadata, pb.ModelMetadataResponse())

    @answered
    def ModelConfig(self, request, context):  # noqa: N802
        config = open_inference.model_configuration(request.name, _version(request.version))
        return pb.ModelConfigResponse(config=json_format.ParseDict(config, pb.model__config__pb2.ModelConfig()))

    @answered
    def RepositoryIndex(self, request, context):  # noqa: N802
        # One repository: its name, if given, is not checked, as Triton's single-repository servers do not.
        index = open_inference.repository(ready_only=request.ready)
        return json_format.ParseDict({"models": index}, pb.RepositoryIndexResponse())

    @answered
    def ModelInfer(self, request, context):  # noqa: N802
        return self._infer(request, context)

    def ModelStreamInfer(self, request_iterator, context):  # noqa: N802
        for request in request_iterator:
            with self.app.app_context():
                try:
                    answer = pb.ModelStreamInferResponse(infer_response=self._infer(request, context))
                except Exception as error:  # noqa: BLE001 (answered in the stream, which goes on)
                    refusal = refusal_of(error, "ModelStreamInfer")
                    answer = pb.ModelStreamInferResponse(error_message=client_text(refusal.message),
                                                         infer_response=pb.ModelInferResponse(
                                                             model_name=request.model_name, id=request.id))
            yield answer

    def _infer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        body, binary = codec.request_body(request)
        decoded = open_inference.decode_request(request.model_name, _version(request.model_version), body, binary)
        scheduling = chosen(INTERACTIVE, priority=decoded.parameters.get("priority"),
                            timeout_s=timeout_s(context, triton_timeout_s(decoded.parameters.get("timeout"))),
                            tenant=tenant(context))
        answer = open_inference.infer(decoded, scheduling)
        outputs, blobs = encode_outputs(answer.values, [(tensor, True) for tensor, _ in decoded.wanted])
        return codec.response(request, outputs, blobs, answer)
