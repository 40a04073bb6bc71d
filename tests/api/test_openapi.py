"""/openapi.json describes every route, and what the routes answer matches it."""

from __future__ import annotations

import io
import re
import uuid

import jsonschema
import numpy as np
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from api.openapi import spec
from inferq.catalog import ModelCatalog
from tests.conftest import png_bytes
from tests.support.specs import image_classifier_spec, mnist_spec, pair_spec, tabular_spec, text_spec
from tests.support.stand_in import publish_heartbeat


def test_the_description_is_valid_openapi(client):
    document = client.get("/openapi.json").get_json()
    assert document == spec()
    validate(document)


#: The verbs TF Serving's ``/v1/models/<name>:<verb>`` answers: each is a path of its own in the description.
VERBS = ("predict", "classify")


def _templates(rule: str) -> list[str]:
    rules = [rule.replace(":<verb>", f":{verb}") for verb in VERBS] if ":<verb>" in rule else [rule]
    return [re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule) for rule in rules]


def test_every_route_is_described(app_and_worker):
    app = app_and_worker[0]
    described = {(path, method.upper()) for path, item in spec()["paths"].items() for method in item}
    routes = {(path, method) for rule in app.url_map.iter_rules() for path in _templates(rule.rule)
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == described


def response_schema(path: str, method: str, status: int) -> dict:
    responses = spec()["paths"][path][method]["responses"]
    entry = responses[str(status)]
    return entry["content"]["application/json"]["schema"]


def assert_matches(response, path: str, method: str = "get") -> None:
    registry = Registry().with_resource("urn:inferq", DRAFT202012.create_resource(spec()))
    schema = {**response_schema(path, method, response.status_code), "$id": "urn:inferq#/"}
    schema = _rebase(schema)
    jsonschema.Draft202012Validator(schema, registry=registry).validate(response.get_json())


def _rebase(schema):
    """Point the description's local ``$ref``s at the registered document."""
    if isinstance(schema, dict):
        return {key: ("urn:inferq" + value if key == "$ref" else _rebase(value)) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_rebase(item) for item in schema]
    return schema


def files(*names, data=None):
    return {"image": [(io.BytesIO(data), name) for name in names]}


def test_answers_match_the_description(make_app, fake_redis, digit_104, mnist_test):
    app, worker = make_app(sync_timeout_s=0.05)
    client = app.test_client()
    assert_matches(client.get("/healthz"), "/healthz")
    assert_matches(client.get("/readyz"), "/readyz")
    publish_heartbeat(fake_redis, version=4, batch_sizes=[4])
    assert_matches(client.get("/readyz"), "/readyz")
    assert_matches(client.get("/models"), "/models")
    assert_matches(client.get("/status"), "/status")

    assert_matches(client.post("/recognize", data=files("104.png", data=digit_104)), "/recognize", "post")
    assert_matches(client.post("/recognize", data=files("a", "b", data=digit_104)), "/recognize", "post")
    assert_matches(client.post("/recognize", data=files("x.txt", data=b"text")), "/recognize", "post")
    accepted = client.post("/jobs", data=files("a", "b", data=digit_104))
    assert_matches(accepted, "/jobs", "post")
    assert_matches(client.get(accepted.headers["Location"]), "/jobs/{job_id}")
    assert_matches(client.get(f"/jobs/{uuid.uuid4()}"), "/jobs/{job_id}")

    worker.answer = False
    timed_out = client.post("/recognize", data=files("a", data=digit_104))
    assert_matches(timed_out, "/recognize", "post")
    assert_matches(client.get(f"/jobs/{timed_out.get_json()['job_id']}"), "/jobs/{job_id}")
    worker.answer, worker.model_error = True, "boom"
    failed = client.post("/recognize", data=files("a", data=digit_104))
    assert_matches(failed, "/recognize", "post")
    assert_matches(client.get(f"/jobs/{failed.get_json()['job_id']}"), "/jobs/{job_id}")

    worker.model_error = None
    pixels = mnist_test[0][:2].reshape(2, -1).tolist()
    assert_matches(client.get("/v1/models/mnist"), "/v1/models/{name}")
    assert_matches(client.get("/v1/models/mnist/metadata"), "/v1/models/{name}/metadata")
    assert_matches(client.post("/v1/models/mnist:predict", json={"instances": pixels}), "/v1/models/{name}:predict",
                   "post")
    assert_matches(client.get("/v2"), "/v2")
    assert_matches(client.get("/v2/health/ready"), "/v2/health/ready")
    assert_matches(client.get("/v2/models/mnist"), "/v2/models/{name}")
    infer = {"inputs": [{"name": "inputdata", "shape": [2, 784], "datatype": "UINT8", "data": pixels}]}
    assert_matches(client.post("/v2/models/mnist/infer", json=infer), "/v2/models/{name}/infer", "post")
    assert_matches(client.post("/v2/models/mnist/infer", json={"inputs": 3}), "/v2/models/{name}/infer", "post")


def test_a_job_handed_back_and_a_long_poll_match_the_description(app_and_worker, digit_104):
    app, worker = app_and_worker
    client = app.test_client()
    worker.answer = False
    handed = client.post("/recognize", data=files("a", data=digit_104), headers={"Prefer": "respond-async"})
    assert handed.status_code == 202 and handed.headers["Preference-Applied"] == "respond-async"
    described = spec()["paths"]["/recognize"]["post"]["responses"]["202"]
    assert described == {"$ref": "#/components/responses/HandedBack"}
    registry = Registry().with_resource("urn:inferq", DRAFT202012.create_resource(spec()))
    schema = _rebase({**spec()["components"]["responses"]["HandedBack"]["content"]["application/json"]["schema"],
                      "$id": "urn:inferq#/"})
    jsonschema.Draft202012Validator(schema, registry=registry).validate(handed.get_json())
    assert_matches(client.get(f"{handed.headers['Location']}?wait=0.1"), "/jobs/{job_id}")
    assert_matches(client.get(f"{handed.headers['Location']}?wait=soon"), "/jobs/{job_id}")


def test_answers_of_a_repository_match_the_description(make_app, fake_redis, digit_104):
    publish_heartbeat(fake_redis, specs=[mnist_spec(3), image_classifier_spec(1), image_classifier_spec(2),
                                         tabular_spec(1), pair_spec(1)])
    ModelCatalog(fake_redis).publish([text_spec(1)])  # no live worker
    app, worker = make_app()
    worker.outputs["scores"] = lambda job: np.tile(np.arange(10, dtype=np.float32), (job.count, 1))
    client = app.test_client()
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.get_json()["models_without_workers"] == ["sentiment"]
    assert_matches(not_ready, "/readyz")
    assert_matches(client.get("/readyz?workers=optional"), "/readyz")
    assert_matches(client.get("/models"), "/models")
    assert_matches(client.get("/models/cifar"), "/models/{name}")
    assert_matches(client.get("/models/fashion"), "/models/{name}")
    assert_matches(client.get("/models/cifar/versions/1"), "/models/{name}/versions/{version}")
    assert_matches(client.get("/status"), "/status")

    rgb = np.zeros((32, 32, 3), np.uint8)
    one = client.post("/models/cifar/recognize", data=files("a.png", data=png_bytes(rgb)))
    assert "top" in one.get_json()
    assert_matches(one, "/models/{name}/recognize", "post")
    several = client.post("/models/cifar/versions/1/recognize", data=files("a", "b", data=png_bytes(rgb)))
    assert_matches(several, "/models/{name}/versions/{version}/recognize", "post")
    assert_matches(client.post("/models/iris/recognize", data=files("a", data=digit_104)), "/models/{name}/recognize",
                   "post")
    assert_matches(client.post("/models/fashion/jobs", data=files("a", data=digit_104)), "/models/{name}/jobs",
                   "post")
    accepted = client.post("/models/cifar/versions/2/jobs", data=files("a", data=png_bytes(rgb)))
    assert_matches(accepted, "/models/{name}/versions/{version}/jobs", "post")
    assert_matches(client.get(accepted.headers["Location"]), "/jobs/{job_id}")

    examples = {"examples": [{"features": [1, 2, 3, 4]}]}
    assert_matches(client.post("/v1/models/iris:classify", json=examples), "/v1/models/{name}:classify", "post")
    assert_matches(client.post("/v1/models/iris/versions/1:classify", json=examples),
                   "/v1/models/{name}/versions/{version}:classify", "post")
    assert_matches(client.post("/v1/models/pair:classify", json={"examples": [{"ids": [1, 2, 3], "weights": [1] * 3}]}),
                   "/v1/models/{name}:classify", "post")
    columns = {"inputs": {"ids": [[1, 2, 3]], "weights": [[0.5, 0.5, 0.5]]}}
    assert_matches(client.post("/v1/models/pair:predict", json=columns), "/v1/models/{name}:predict", "post")
    assert_matches(client.get("/v2/models/mnist/config"), "/v2/models/{name}/config")
    assert_matches(client.get("/v2/models/cifar/versions/1/config"), "/v2/models/{name}/versions/{version}/config")
    assert_matches(client.get("/v2/models/fashion/config"), "/v2/models/{name}/config")
    assert_matches(client.post("/v2/repository/index", json={}), "/v2/repository/index", "post")
    assert_matches(client.post("/v2/repository/index", json={"ready": "yes"}), "/v2/repository/index", "post")
    infer = {"inputs": [{"name": "ids", "datatype": "INT64", "shape": [1, 3], "data": [1, 2, 3]},
                        {"name": "weights", "datatype": "FP32", "shape": [1, 3], "data": [0.5, 0.5, 0.5]}]}
    assert_matches(client.post("/v2/models/pair/infer", json=infer), "/v2/models/{name}/infer", "post")


def test_a_refusal_for_the_key_matches_the_description(make_app):
    app, _ = make_app(api_key="k")
    assert_matches(app.test_client().get("/models"), "/models")
