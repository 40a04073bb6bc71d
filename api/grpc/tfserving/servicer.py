"""TF Serving's ``tensorflow.serving.PredictionService`` (Predict, Classify, GetModelMetadata) and
``ModelService`` (GetModelStatus), each RPC done as the REST route does it (``api.tfserving.routes``):
the same model lookup, signature check, input checks (``api.grpc.tfserving.tensors``,
``api.tfserving.codec``) and queue (``api.queue.dispatch.infer``), every refusal the REST route's as a
gRPC status (``api.grpc.calls``). The call's deadline is the job's, as over KServe's gRPC.

Regress, MultiInference and HandleReloadConfigRequest answer UNIMPLEMENTED, grpcio's default: no
model of inferq's is a regressor, and models are served by the workers, not configured here.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from flask import Flask
from google.protobuf import json_format, wrappers_pb2

from api.errors import ApiError
from api.grpc.calls import answered, tenant, timeout_s
from api.grpc.tfserving import examples, tensors
from api.grpc.tfserving.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from api.queue.dispatch import infer, served_model
from api.queue.model_lookup import Served
from api.queue.scheduling import Scheduling, chosen
from api.runtime import runtime
from api.tfserving import codec as tfserving_codec
from api.tfserving.classify import classifications, not_a_classifier
from api.tfserving.metadata import check_signature, signature_def_map, signature_name, version_status
from inferq.model_spec import ModelSpec, TensorSpec
from inferq.priorities import INTERACTIVE

#: The one metadata field TF Serving answers, and inferq with it.
SIGNATURE_DEF = "signature_def"


def _version(spec: model_pb2.ModelSpec) -> int | None:
    """The version ``model_spec`` asks for; None: the newest."""
    which = spec.WhichOneof("version_choice")
    if which == "version_label":
        raise ApiError(400, f"no version label {spec.version_label!r}: inferq addresses versions by number "
                            "('version'), or the newest without one")
    return spec.version.value if which == "version" else None


def _served(spec: model_pb2.ModelSpec, *, signature: bool = True) -> Served:
    """The model ``spec`` names, at its version, its signature checked (``signature``) as REST's."""
    served = served_model(spec.name, _version(spec))
    if signature:
        check_signature(served, spec.signature_name or signature_name(served))
    return served


def _answering(name: str, served: Served, version: int) -> model_pb2.ModelSpec:
    return model_pb2.ModelSpec(name=name, version=wrappers_pb2.Int64Value(value=version),
                               signature_name=signature_name(served))


def _scheduling(context: grpc.ServicerContext) -> Scheduling:
    return chosen(INTERACTIVE, timeout_s=timeout_s(context), tenant=tenant(context))


def _filtered(names: Sequence[str], spec: ModelSpec) -> list[TensorSpec]:
    """The outputs ``output_filter`` asks for, in its order; none named: every output."""
    if not names:
        return list(spec.outputs)
    outputs = []
    for name in names:
        tensor = spec.output(name)
        if tensor is None:
            raise ApiError(400, f"'output_filter': no output {name!r}; the model's outputs are "
                                + ", ".join(repr(output.name) for output in spec.outputs))
        if tensor in outputs:
            raise ApiError(400, f"'output_filter': output {name!r} is asked for twice")
        outputs.append(tensor)
    return outputs


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, app: Flask) -> None:
        self.app = app

    @answered
    def Predict(self, request: predict_pb2.PredictRequest, context):  # noqa: N802 (the protocol's names)
        served = _served(request.model_spec)
        inputs = tensors.decode_inputs(request.inputs, served.spec, runtime().settings.max_images_per_request)
        outputs = _filtered(request.output_filter, served.spec)
        answer = infer(served, inputs, outputs, _scheduling(context))
        response = predict_pb2.PredictResponse(model_spec=_answering(request.model_spec.name, served, answer.version))
        for tensor in outputs:
            response.outputs[tensor.name].CopyFrom(tensors.tensor_proto(answer.values[tensor.name], tensor))
        return response

    @answered
    def Classify(self, request: classification_pb2.ClassificationRequest, context):  # noqa: N802
        served = _served(request.model_spec)
        scores = served.spec.class_output()
        if scores is None:
            raise not_a_classifier(served.spec)
        listed, shared = examples.examples_of(request.input)
        inputs = tfserving_codec.decode_examples(listed, served.spec, runtime().settings.max_images_per_request,
                                                 context=shared)
        answer = infer(served, inputs, [scores], _scheduling(context))
        results = classifications(answer.values[scores.name], served.spec.config.labels)["results"]
        Class = classification_pb2.Class  # noqa: N806 (the message's name)
        return classification_pb2.ClassificationResponse(
            model_spec=_answering(request.model_spec.name, served, answer.version),
            result=classification_pb2.ClassificationResult(classifications=[
                classification_pb2.Classifications(classes=[Class(label=label, score=score) for label, score in item])
                for item in results]))

    @answered
    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):  # noqa: N802
        served = _served(request.model_spec, signature=False)
        fields = list(request.metadata_field)
        if not fields:
            raise ApiError(400, f"'metadata_field' is empty: ask for {SIGNATURE_DEF!r}")
        unserved = [field for field in fields if field != SIGNATURE_DEF]
        if unserved:
            raise ApiError(400, f"metadata field {unserved[0]!r} is not served: inferq answers {SIGNATURE_DEF!r}")
        # As the REST route answers: the version that is served, no signature name.
        response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=model_pb2.ModelSpec(
            name=request.model_spec.name, version=wrappers_pb2.Int64Value(value=served.version)))
        response.metadata[SIGNATURE_DEF].Pack(json_format.ParseDict(signature_def_map(served),
                                                                    get_model_metadata_pb2.SignatureDefMap()))
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, app: Flask) -> None:
        self.app = app

    @answered
    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):  # noqa: N802
        served = _served(request.model_spec, signature=False)
        return json_format.ParseDict(version_status(served, _version(request.model_spec)),
                                     get_model_status_pb2.GetModelStatusResponse())
