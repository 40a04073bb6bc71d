"""What TF Serving's REST routes and its gRPC services answer alike about a served model: its
versions' status, its signature (``SignatureDefMap``, as protobuf's JSON has it) and the one
signature name a request may give.

The gRPC services (``api.grpc.tfserving``) parse these same JSON values into TF Serving's messages.
"""

from __future__ import annotations

from api.errors import ApiError
from api.queue.model_lookup import Served
from inferq.model_config import DEFAULT_SIGNATURE
from inferq.model_spec import TensorSpec

#: The method of the signature served: inferq predicts (and classifies with any model of class scores).
PREDICT_METHOD = "tensorflow/serving/predict"


def version_status(served: Served, version: int | None) -> dict:
    """``GetModelStatusResponse``: the version asked for, or every served one, available."""
    return {"model_version_status": [
        {"version": str(shown), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for shown in ([version] if version is not None else served.versions)
    ]}


def signature_def_map(served: Served) -> dict:
    """``SignatureDefMap``: the one signature served, under its name."""
    signature = {
        "inputs": {tensor.name: _tensor_info(tensor) for tensor in served.spec.inputs},
        "outputs": {tensor.name: _tensor_info(tensor) for tensor in served.spec.outputs},
        "method_name": PREDICT_METHOD,
    }
    return {"signature_def": {signature_name(served): signature}}


def _tensor_info(tensor: TensorSpec) -> dict:
    # Protobuf's JSON: int64 sizes are strings.
    return {
        "dtype": tensor.type.tf_serving,
        "tensor_shape": {"dim": [{"size": str(size), "name": ""} for size in tensor.shape], "unknown_rank": False},
        "name": tensor.tensor_name,
    }


def signature_name(served: Served) -> str:
    # A model without a signature (the original Go server's) answers under the default name.
    return served.spec.signature or DEFAULT_SIGNATURE


def check_signature(served: Served, asked: str) -> None:
    """A 400 unless ``asked`` is the served signature's name."""
    if asked != signature_name(served):
        raise ApiError(400, f"no signature {asked!r}: the model has {signature_name(served)!r}")
