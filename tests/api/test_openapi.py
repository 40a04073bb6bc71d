"""/openapi.json describes every route, and what the routes answer matches it."""

from __future__ import annotations

import io
import re
import uuid

import jsonschema
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from api.openapi import spec
from tests.support.stand_in import publish_heartbeat


def test_the_description_is_valid_openapi(client):
    document = client.get("/openapi.json").get_json()
    assert document == spec()
    validate(document)


def _template(rule: str) -> str:
    rule = rule.replace(":<verb>", ":predict")
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def test_every_route_is_described(app_and_worker):
    app = app_and_worker[0]
    described = {(path, method.upper()) for path, item in spec()["paths"].items() for method in item}
    routes = {(_template(rule.rule), method) for rule in app.url_map.iter_rules()
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


def test_a_refusal_for_the_key_matches_the_description(make_app):
    app, _ = make_app(api_key="k")
    assert_matches(app.test_client().get("/models"), "/models")
