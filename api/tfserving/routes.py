"""TensorFlow Serving's REST API, so that its clients can point at inferq unchanged.

- ``GET /v1/models/<name>[/versions/<n>]``: the served versions' status.
- ``GET /v1/models/<name>[/versions/<n>]/metadata``: the served signature.
- ``POST /v1/models/<name>[/versions/<n>]:predict``: row format ``{"instances": [...]}`` answered with
  ``{"predictions": [...]}``, column format ``{"inputs": ...}`` with ``{"outputs": ...}``.
- ``POST /v1/models/<name>[/versions/<n>]:classify``: ``{"examples": [...]}`` answered with
  ``{"results": [[[class, score], ...], ...]}``, for a model with one output that scores its classes.

Bodies and errors (``{"error": ...}``) are as https://www.tensorflow.org/tfx/serving/api_rest has them;
the bodies' tensors are read and written by ``api.tfserving.codec``.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.errors import ApiError
from api.queue.dispatch import infer, json_object, served_model
from api.queue.model_lookup import Served
from api.queue.scheduling import Scheduling, from_request
from api.runtime import runtime
from api.tfserving import codec, metadata
from api.tfserving.classify import classifications, not_a_classifier
from inferq.priorities import INTERACTIVE

blueprint = Blueprint("tfserving", __name__)


@blueprint.get("/v1/models/<model:name>")
@blueprint.get("/v1/models/<model:name>/versions/<int:version>")
def version_status(name: str, version: int | None = None) -> Response:
    return jsonify(metadata.version_status(served_model(name, version), version))


@blueprint.get("/v1/models/<model:name>/metadata")
@blueprint.get("/v1/models/<model:name>/versions/<int:version>/metadata")
def model_metadata(name: str, version: int | None = None) -> Response:
    served = served_model(name, version)
    return jsonify({
        "model_spec": {"name": name, "signature_name": "", "version": str(served.version)},
        "metadata": {"signature_def": metadata.signature_def_map(served)},
    })


@blueprint.post("/v1/models/<model:name>:<verb>")
@blueprint.post("/v1/models/<model:name>/versions/<int:version>:<verb>")
def predict(name: str, verb: str, version: int | None = None) -> Response:
    if verb not in ("predict", "classify"):  # :regress: no model of ours is a regressor by TF Serving's API
        raise ApiError(404, f"inferq answers ':predict' and ':classify', not {':' + verb!r}")
    served = served_model(name, version)
    body = json_object(request.get_data(), f"the {verb} request")
    metadata.check_signature(served, body.get("signature_name", metadata.signature_name(served)))
    max_items = runtime().settings.max_images_per_request
    scheduling = from_request(request, INTERACTIVE)
    if verb == "classify":
        return _classify(served, body, max_items, scheduling)
    if ("instances" in body) == ("inputs" in body):
        raise ApiError(400, "send either 'instances' (row format) or 'inputs' (column format), one of them")
    if "instances" in body:
        inputs = codec.decode_instances(body["instances"], served.spec, max_items)
        values = infer(served, inputs, served.spec.outputs, scheduling).values
        return jsonify({"predictions": codec.predictions(values)})
    inputs = codec.decode_columns(body["inputs"], served.spec, max_items)
    values = infer(served, inputs, served.spec.outputs, scheduling).values
    return jsonify({"outputs": codec.columnar_outputs(values)})


def _classify(served: Served, body: dict, max_items: int, scheduling: Scheduling) -> Response:
    scores = served.spec.class_output()
    if scores is None:
        raise not_a_classifier(served.spec)
    inputs = codec.decode_examples(body.get("examples"), served.spec, max_items, context=body.get("context"))
    values = infer(served, inputs, [scores], scheduling).values
    return jsonify(classifications(values[scores.name], served.spec.config.labels))
