"""TensorFlow Serving's REST API, so that its clients can point at inferq unchanged.

- ``GET /v1/models/<name>[/versions/<n>]``: the served versions' status.
- ``GET /v1/models/<name>[/versions/<n>]/metadata``: the ``serving_default`` signature.
- ``POST /v1/models/<name>[/versions/<n>]:predict``: row format ``{"instances": [...]}`` answered with
  ``{"predictions": [...]}``, column format ``{"inputs": ...}`` with ``{"outputs": ...}``.

Bodies and errors (``{"error": ...}``) are as https://www.tensorflow.org/tfx/serving/api_rest has them.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from werkzeug.routing import BaseConverter

from api.errors import ApiError
from api.scheduling import from_request
from api.tensors import images, infer, json_object, served_model
from inferq import model_contract as contract
from inferq.model_spec import TensorSpec
from inferq.priorities import INTERACTIVE

blueprint = Blueprint("tfserving", __name__)


class ModelName(BaseConverter):
    """A model name stops at a colon, so that ``GET /v1/models/mnist:predict`` is not model "mnist:predict"."""

    regex = "[^/:]+"


blueprint.record_once(lambda state: state.app.url_map.converters.setdefault("model", ModelName))



@blueprint.get("/v1/models/<model:name>")
@blueprint.get("/v1/models/<model:name>/versions/<int:version>")
def version_status(name: str, version: int | None = None) -> Response:
    served = served_model(name, version)
    return jsonify({"model_version_status": [
        {"version": str(shown), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for shown in ([version] if version is not None else served.versions)
    ]})


@blueprint.get("/v1/models/<model:name>/metadata")
@blueprint.get("/v1/models/<model:name>/versions/<int:version>/metadata")
def metadata(name: str, version: int | None = None) -> Response:
    served = served_model(name, version)
    signature = {
        "inputs": {tensor.name: _tensor_info(tensor) for tensor in served.spec.inputs},
        "outputs": {tensor.name: _tensor_info(tensor) for tensor in served.spec.outputs},
        "method_name": "tensorflow/serving/predict",
    }
    return jsonify({
        "model_spec": {"name": name, "signature_name": "", "version": str(served.version)},
        "metadata": {"signature_def": {"signature_def": {contract.SIGNATURE: signature}}},
    })


def _tensor_info(tensor: TensorSpec) -> dict:
    # Protobuf's JSON: int64 sizes are strings.
    return {
        "dtype": tensor.type.tf_serving,
        "tensor_shape": {"dim": [{"size": str(size), "name": ""} for size in tensor.shape], "unknown_rank": False},
        "name": tensor.tensor_name,
    }


@blueprint.post("/v1/models/<model:name>:<verb>")
@blueprint.post("/v1/models/<model:name>/versions/<int:version>:<verb>")
def predict(name: str, verb: str, version: int | None = None) -> Response:
    if verb != "predict":  # :classify and :regress take tf.Example features, which this model has none of
        raise ApiError(404, f"inferq answers ':predict', not {':' + verb!r}")
    served = served_model(name, version)
    body = json_object(request.get_data(), "the predict request")
    # A model without a signature (the original Go server's) answers under the default name.
    served_signature = served.spec.signature or contract.SIGNATURE
    signature = body.get("signature_name", served_signature)
    if signature != served_signature:
        raise ApiError(400, f"no signature {signature!r}: the model has {served_signature!r}")
    if ("instances" in body) == ("inputs" in body):
        raise ApiError(400, "send either 'instances' (row format) or 'inputs' (column format), one of them")
    input_name, outputs = served.input.name, served.spec.outputs
    scheduling = from_request(request, INTERACTIVE)
    if "instances" in body:
        columns = infer(images(_instances(body["instances"], input_name), "instances"), served, outputs,
                        scheduling).values
        rows = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        return jsonify({"predictions": _unnamed_if_one(columns, rows)})
    columns = infer(images(_by_name(body["inputs"], input_name, "inputs"), "inputs"), served, outputs,
                    scheduling).values
    return jsonify({"outputs": _unnamed_if_one(columns, columns)})


def _instances(instances: object, input_name: str) -> list:
    if not isinstance(instances, list):
        raise ApiError(400, "'instances' must be a list, one instance per image")
    return [_by_name(instance, input_name, f"instance {index}") for index, instance in enumerate(instances)]


def _by_name(value: object, input_name: str, what: str) -> object:
    """``value``, or its input's entry where it names the inputs (``{"inputdata": ...}``)."""
    if not isinstance(value, dict):
        return value
    if set(value) != {input_name}:
        raise ApiError(400, f"{what} names inputs {sorted(value)}; the model has one, {input_name!r}")
    return value[input_name]


def _unnamed_if_one(columns: dict[str, list], named: object) -> object:
    """TF Serving leaves the names out where the model has one output: its values alone."""
    return next(iter(columns.values())) if len(columns) == 1 else named
