"""KServe's v2 inference protocol (the Open Inference Protocol) over HTTP, with Triton's binary
tensor data, model configuration and model repository extensions, so that tritonclient,
perf_analyzer and other v2 clients can point at inferq unchanged.

- ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``: the server, is it up, can it answer.
- ``GET /v2/models/<name>[/versions/<n>]`` and ``.../ready``: a model's tensors, can it answer.
- ``GET /v2/models/<name>[/versions/<n>]/config``: Triton's model configuration.
- ``POST /v2/repository/index``: every model and version, and whether it can answer.
- ``POST /v2/models/<name>[/versions/<n>]/infer``: every input of the model's signature, of its
  datatype, as JSON ``data`` or binary; every output, or those asked for, as JSON or binary
  (``api.tensor_codec``).

Binary data follows the JSON header in the body, its length in ``Inference-Header-Content-Length``:
tritonclient sends and asks for tensors that way by default.
"""

from __future__ import annotations

import importlib.metadata
import json

import redis
from flask import Blueprint, Response, jsonify, request

from api import tensors
from api.errors import ApiError, error_response
from api.runtime import runtime
from api.scheduling import from_request, triton_timeout_s
from api.tensor_codec import decode_inputs, encode_outputs, parameters_of, requested_outputs
from api.tensors import json_object, served_model
from api.triton_config import IndexEntry, model_config, repository_index
from inferq.model_spec import TensorSpec
from inferq.priorities import INTERACTIVE
from inferq.workers import served_versions

blueprint = Blueprint("kserve", __name__)

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data", "schedule_policy", "model_configuration", "model_repository"]


@blueprint.get("/v2")
def server_metadata() -> Response:
    return jsonify({"name": "inferq", "version": importlib.metadata.version("inferq"), "extensions": EXTENSIONS})


@blueprint.get("/v2/health/live")
def server_live() -> Response:
    return jsonify({"live": True})


@blueprint.get("/v2/health/ready")
def server_ready() -> Response:
    return model_ready(runtime().settings.default_model)


@blueprint.get("/v2/models/<model:name>/ready")
@blueprint.get("/v2/models/<model:name>/versions/<int:version>/ready")
def model_ready(name: str, version: int | None = None) -> Response:
    # The protocol reads any 4xx as "not ready"; a 5xx would read as the server failing.
    try:
        served = served_model(name, version)
        live = _live_versions().get(name, set())
    except ApiError as error:
        return error_response(error.status if error.status < 500 else 400, error.message, ready=False)
    except redis.RedisError:
        return error_response(400, "the broker (Redis) does not answer", ready=False, reason="broker")
    if served.version not in live:
        return error_response(400, f"no live worker serves model {name!r} version {served.version}", ready=False)
    return jsonify({"ready": True})


@blueprint.get("/v2/models/<model:name>")
@blueprint.get("/v2/models/<model:name>/versions/<int:version>")
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


@blueprint.get("/v2/models/<model:name>/config")
@blueprint.get("/v2/models/<model:name>/versions/<int:version>/config")
def model_configuration(name: str, version: int | None = None) -> Response:
    spec = served_model(name, version).spec
    settings = runtime().settings
    wait_ms = settings.max_batch_wait_ms if spec.config.max_batch_wait_ms is None else spec.config.max_batch_wait_ms
    return jsonify(model_config(spec, spec.config.max_batch_size or settings.max_batch_size, wait_ms))


@blueprint.post("/v2/repository/index")
def repository() -> Response:
    body = json_object(request.get_data() or b"{}", "the index request")
    ready_only = body.get("ready", False)
    if not isinstance(ready_only, bool):
        raise ApiError(400, f"'ready' must be true or false, got {ready_only!r}")
    live = _live_versions()
    entries = [IndexEntry(name, spec.version, spec.version in live.get(name, set()),
                          "" if spec.version in live.get(name, set()) else "no live worker serves it")
               for name, specs in runtime().models.all().items() for spec in specs]
    return jsonify(repository_index(entries, ready_only=ready_only))


def _live_versions() -> dict[str, set[int]]:
    return served_versions(runtime().workers.live())


@blueprint.post("/v2/models/<model:name>/infer")
@blueprint.post("/v2/models/<model:name>/versions/<int:version>/infer")
def infer(name: str, version: int | None = None) -> Response:
    served = served_model(name, version)
    header, binary = _split_body()
    body = json_object(header, "the inference request")
    inputs = decode_inputs(body.get("inputs"), binary, served.spec,
                           max_items=runtime().settings.max_images_per_request)
    wanted = requested_outputs(body, served.spec)
    parameters = parameters_of(body, "the request")
    scheduling = from_request(request, INTERACTIVE, priority=parameters.get("priority"),
                              timeout_s=triton_timeout_s(parameters.get("timeout")))
    answer = tensors.infer(served, inputs, [tensor for tensor, _ in wanted], scheduling)
    response: dict[str, object] = {"model_name": name, "model_version": str(answer.version)}
    if body.get("id") is not None:
        response["id"] = body["id"]
    response["outputs"], blobs = encode_outputs(answer.values, wanted)
    if not blobs:
        return jsonify(response)
    head = json.dumps(response).encode()
    return Response(head + b"".join(blobs), content_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(head))})


def _split_body() -> tuple[bytes, bytes]:
    """The JSON header, and the binary tensor data after it."""
    body = request.get_data()
    length = request.headers.get(HEADER_LENGTH)
    if length is None:
        return body, b""
    if not length.isdigit() or int(length) > len(body):
        raise ApiError(400, f"{HEADER_LENGTH} {length!r} is not a length within the {len(body)}-byte body")
    return body[:int(length)], body[int(length):]
