"""KServe's v2 inference protocol (the Open Inference Protocol) over HTTP, with Triton's binary
tensor data, model configuration and model repository extensions, so that tritonclient,
perf_analyzer and other v2 clients can point at inferq unchanged.

- ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``: the server, is it up, can it answer.
- ``GET /v2/models/<name>[/versions/<n>]`` and ``.../ready``: a model's tensors, can it answer.
- ``GET /v2/models/<name>[/versions/<n>]/config``: Triton's model configuration.
- ``POST /v2/repository/index``: every model and version, and whether it can answer.
- ``POST /v2/models/<name>[/versions/<n>]/infer``: every input of the model's signature, of its
  datatype, as JSON ``data`` or binary; every output, or those asked for, as JSON or binary
  (``api.kserve.codec``).

Binary data follows the JSON header in the body, its length in ``Inference-Header-Content-Length``:
tritonclient sends and asks for tensors that way by default.
"""

from __future__ import annotations

import json

import orjson
from flask import Blueprint, Response, jsonify, request

from api.error_responses import error_response
from api.errors import ApiError
from api.kserve import open_inference
from api.kserve.codec import encode_outputs
from api.queue.dispatch import json_object
from api.queue.scheduling import from_request, triton_timeout_s
from api.runtime import runtime
from inferq.priorities import INTERACTIVE

blueprint = Blueprint("kserve", __name__)

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = open_inference.EXTENSIONS


@blueprint.get("/v2")
def server_metadata() -> Response:
    return jsonify(open_inference.server_metadata())


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
    error = open_inference.not_ready(name, version)
    if error is not None:
        broker = {"reason": "broker"} if error.details.get("reason") == "broker" else {}
        return error_response(error.status if error.status < 500 else 400, error.message, ready=False, **broker)
    return jsonify({"ready": True})


@blueprint.get("/v2/models/<model:name>")
@blueprint.get("/v2/models/<model:name>/versions/<int:version>")
def model_metadata(name: str, version: int | None = None) -> Response:
    return jsonify(open_inference.model_metadata(name, version))


@blueprint.get("/v2/models/<model:name>/config")
@blueprint.get("/v2/models/<model:name>/versions/<int:version>/config")
def model_configuration(name: str, version: int | None = None) -> Response:
    return jsonify(open_inference.model_configuration(name, version))


@blueprint.post("/v2/repository/index")
def repository() -> Response:
    body = json_object(request.get_data() or b"{}", "the index request")
    ready_only = body.get("ready", False)
    if not isinstance(ready_only, bool):
        raise ApiError(400, f"'ready' must be true or false, got {ready_only!r}")
    return jsonify(open_inference.repository(ready_only=ready_only))


@blueprint.post("/v2/models/<model:name>/infer")
@blueprint.post("/v2/models/<model:name>/versions/<int:version>/infer")
def infer(name: str, version: int | None = None) -> Response:
    header, binary = _split_body()
    body = json_object(header, "the inference request")
    decoded = open_inference.decode_request(name, version, body, binary)
    scheduling = from_request(request, INTERACTIVE, priority=decoded.parameters.get("priority"),
                              timeout_s=triton_timeout_s(decoded.parameters.get("timeout")))
    answer = open_inference.infer(decoded, scheduling)
    response: dict[str, object] = {"model_name": name, "model_version": str(answer.version)}
    if body.get("id") is not None:
        response["id"] = body["id"]
    response["outputs"], blobs = encode_outputs(answer.values, decoded.wanted)
    if not blobs:
        return jsonify(response)
    head = _head(response)
    return Response(head + b"".join(blobs), content_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(head))})


def _head(response: dict) -> bytes:
    """The JSON header of a binary answer. By orjson, but for an ``id`` other than a string, which
    is echoed as the json module writes it (orjson writes NaN as null, refuses ints past 64 bits)."""
    if isinstance(response.get("id", ""), str):
        try:
            return orjson.dumps(response)
        except TypeError:  # a string orjson cannot write (a lone surrogate)
            pass
    return json.dumps(response).encode()


def _split_body() -> tuple[bytes, bytes]:
    """The JSON header, and the binary tensor data after it."""
    body = request.get_data()
    length = request.headers.get(HEADER_LENGTH)
    if length is None:
        return body, b""
    if not length.isdigit() or int(length) > len(body):
        raise ApiError(400, f"{HEADER_LENGTH} {length!r} is not a length within the {len(body)}-byte body")
    return body[:int(length)], body[int(length):]
