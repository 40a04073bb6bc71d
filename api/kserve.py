"""KServe's v2 inference protocol (the Open Inference Protocol) over HTTP, with Triton's binary
tensor data extension, so that tritonclient and other v2 clients can point at inferq unchanged.

- ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``: the server, is it up, can it answer.
- ``GET /v2/models/<name>[/versions/<n>]`` and ``.../ready``: the model's tensors, can it answer.
- ``POST /v2/models/<name>[/versions/<n>]/infer``: one input ``inputdata``, FP32 or UINT8, shape
  [N, 784] or [N, 28, 28], as JSON ``data`` (flat or nested) or binary; outputs ``labels`` (INT64 [N])
  and ``probabilities`` (FP32 [N, 10]), each as JSON or binary as asked.

Binary data follows the JSON header in the body, its length in ``Inference-Header-Content-Length``:
tritonclient sends and asks for tensors that way by default.
"""

from __future__ import annotations

import importlib.metadata
import json
import math

import numpy as np
import redis
from flask import Blueprint, Response, jsonify, request

from api import tensors
from api.errors import ApiError, error_response
from api.runtime import runtime
from api.scheduling import from_request, triton_timeout_s
from api.tensors import Answer, Served, json_object, numbers, pixels, served_model
from inferq.model_spec import TensorSpec
from inferq.priorities import INTERACTIVE

blueprint = Blueprint("kserve", __name__)

HEADER_LENGTH = "Inference-Header-Content-Length"
#: Binary tensor data is little-endian, in the type's own size.
_BINARY = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1"), "INT64": np.dtype("<i8")}
_INPUT_TYPES = ("FP32", "UINT8")


@blueprint.get("/v2")
def server_metadata() -> Response:
    return jsonify({"name": "inferq", "version": importlib.metadata.version("inferq"),
                    "extensions": ["binary_tensor_data", "schedule_policy"]})


@blueprint.get("/v2/health/live")
def server_live() -> Response:
    return jsonify({"live": True})


@blueprint.get("/v2/health/ready")
def server_ready() -> Response:
    return model_ready(runtime().settings.model_name)


@blueprint.get("/v2/models/<name>/ready")
@blueprint.get("/v2/models/<name>/versions/<int:version>/ready")
def model_ready(name: str, version: int | None = None) -> Response:
    # The protocol reads any 4xx as "not ready"; a 5xx would read as the server failing.
    try:
        served_model(name, version)
    except ApiError as error:
        return error_response(error.status if error.status < 500 else 400, error.message, ready=False)
    except redis.RedisError:
        return error_response(400, "the broker (Redis) does not answer", ready=False, reason="broker")
    return jsonify({"ready": True})


@blueprint.get("/v2/models/<name>")
@blueprint.get("/v2/models/<name>/versions/<int:version>")
def model_metadata(name: str, version: int | None = None) -> Response:
    served = served_model(name, version)
    return jsonify({
        "name": name,
        "versions": [str(served_version) for served_version in served.versions],
        "platform": "tensorflow_savedmodel",
        "inputs": [_metadata(tensor) for tensor in served.spec.inputs],
        "outputs": [_metadata(tensor) for tensor in served.spec.outputs],
    })


def _metadata(tensor: TensorSpec) -> dict:
    return {"name": tensor.name, "datatype": tensor.type.kserve, "shape": list(tensor.shape)}


@blueprint.post("/v2/models/<name>/infer")
@blueprint.post("/v2/models/<name>/versions/<int:version>/infer")
def infer(name: str, version: int | None = None) -> Response:
    served = served_model(name, version)
    header, binary = _split_body()
    body = json_object(header, "the inference request")
    images = _input(body.get("inputs"), binary, served.input)
    wanted = _outputs(body, served)
    parameters = _parameters(body, "the request")
    scheduling = from_request(request, INTERACTIVE, priority=parameters.get("priority"),
                              timeout_s=triton_timeout_s(parameters.get("timeout")))
    answer = tensors.infer(images, served, [tensor for tensor, _ in wanted], scheduling)
    return _response(name, answer, wanted, body.get("id"))


def _split_body() -> tuple[bytes, bytes]:
    """The JSON header, and the binary tensor data after it."""
    body = request.get_data()
    length = request.headers.get(HEADER_LENGTH)
    if length is None:
        return body, b""
    if not length.isdigit() or int(length) > len(body):
        raise ApiError(400, f"{HEADER_LENGTH} {length!r} is not a length within the {len(body)}-byte body")
    return body[:int(length)], body[int(length):]


def _input(inputs: object, binary: bytes, expected: TensorSpec) -> np.ndarray:
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ApiError(400, f"'inputs' must list one tensor, {expected.name!r}")
    tensor = inputs[0]
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    what = f"input {name!r}"
    if name != expected.name:
        raise ApiError(400, f"no input {name!r}: the model has one, {expected.name!r}")
    if datatype not in _INPUT_TYPES:
        raise ApiError(400, f"{what}: datatype {datatype!r}; send {' or '.join(_INPUT_TYPES)}")
    if not isinstance(shape, list) or not all(type(size) is int and size >= 0 for size in shape):
        raise ApiError(400, f"{what}: shape must be a list of sizes, got {shape!r}")
    size = _parameters(tensor, what).get("binary_data_size")
    if size is not None:
        needed = math.prod(shape) * _BINARY[datatype].itemsize
        if size != len(binary) or len(binary) != needed:
            raise ApiError(400, f"{what}: shape {shape} of {datatype} is {needed} bytes; binary_data_size says "
                                f"{size!r}, and {len(binary)} bytes follow the JSON")
        values = np.frombuffer(binary, _BINARY[datatype])
    elif "data" in tensor:
        if binary:
            raise ApiError(400, f"{len(binary)} bytes of binary data follow the JSON, but no input has "
                                "a binary_data_size")
        values = numbers(tensor["data"], what)
        if values.size != math.prod(shape):
            raise ApiError(400, f"{what}: shape {shape} holds {math.prod(shape)} values, its data {values.size}")
    else:
        raise ApiError(400, f"{what}: no 'data', and no binary_data_size for binary data")
    if datatype == "UINT8" and not np.array_equal(values, np.rint(values)):
        raise ApiError(400, f"{what}: UINT8 values must be whole numbers")
    return pixels(values.reshape(shape), what)


def _outputs(body: dict, served: Served) -> list[tuple[TensorSpec, bool]]:
    """The outputs asked for (all when none are named), each with whether to send it binary."""
    binary = _flag(_parameters(body, "the request").get("binary_data_output", False), "binary_data_output")
    requested = body.get("outputs")
    if requested in (None, []):
        return [(tensor, binary) for tensor in served.spec.outputs]
    if not isinstance(requested, list) or not all(isinstance(output, dict) for output in requested):
        raise ApiError(400, "'outputs' must be a list of objects, each naming an output")
    return [
        (served.output(output.get("name")),
         _flag(_parameters(output, f"output {output.get('name')!r}").get("binary_data", binary), "binary_data"))
        for output in requested
    ]


def _parameters(holder: dict, what: str) -> dict:
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ApiError(400, f"{what}: 'parameters' must be an object")
    return parameters


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {value!r}")
    return value


def _response(name: str, answer: Answer, wanted: list[tuple[TensorSpec, bool]], request_id: object) -> Response:
    body: dict[str, object] = {"model_name": name, "model_version": str(answer.version)}
    if request_id is not None:
        body["id"] = request_id
    outputs, blobs = [], []
    for tensor, binary in wanted:
        values = np.asarray(answer.values[tensor.name])
        datatype = tensor.type.kserve
        output: dict[str, object] = {"name": tensor.name, "datatype": datatype, "shape": list(values.shape)}
        if binary:
            blobs.append(values.astype(_BINARY[datatype]).tobytes())
            output["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            output["data"] = values.ravel().tolist()
        outputs.append(output)
    body["outputs"] = outputs
    if not blobs:
        return jsonify(body)
    header = json.dumps(body).encode()
    return Response(header + b"".join(blobs), content_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header))})
