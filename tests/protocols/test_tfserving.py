"""TF Serving's REST API on the stand-in worker: each route's body, both predict formats, versions."""

from __future__ import annotations

import numpy as np
import pytest

from tests.protocols.conftest import GO_SERVER_SPEC
from tests.protocols.helpers import digits, stand_in_labels
from tests.support.specs import mnist_spec
from tests.support.stand_in import BROKER_UNREACHABLE, STAND_IN_VERSION, fake_label

#: The stand-in's probabilities, 0.1 as float32, written as JSON writes the float32 value: exactly.
FP32_TENTH = float(np.float32(0.1))

PREDICT = "/v1/models/mnist:predict"


def available(version: str) -> dict:
    return {"version": version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def test_version_status_lists_what_live_workers_serve(client, serve):
    assert client.get("/v1/models/mnist").get_json() == {"model_version_status": [available("3")]}
    serve(version=5, name="host:2")
    assert client.get("/v1/models/mnist").get_json() == {"model_version_status": [available("3"), available("5")]}
    assert client.get("/v1/models/mnist/versions/5").get_json() == {"model_version_status": [available("5")]}


def test_metadata_is_the_serving_default_signature(client):
    response = client.get("/v1/models/mnist/metadata")
    assert response.status_code == 200

    def info(dtype, name, *sizes):
        return {"dtype": dtype, "tensor_shape": {"dim": [{"size": size, "name": ""} for size in sizes],
                                                 "unknown_rank": False}, "name": name}

    assert response.get_json() == {
        "model_spec": {"name": "mnist", "signature_name": "", "version": "3"},
        "metadata": {"signature_def": {"signature_def": {"serving_default": {
            "inputs": {"inputdata": info("DT_FLOAT", "inputdata:0", "-1", "784")},
            "outputs": {"labels": info("DT_INT64", "inference:0", "-1"),
                        "probabilities": info("DT_FLOAT", "probabilities:0", "-1", "10")},
            "method_name": "tensorflow/serving/predict",
        }}}},
    }
    assert client.get("/v1/models/mnist/versions/3/metadata").get_json() == response.get_json()


@pytest.mark.parametrize("shape", [(784,), (28, 28)], ids=["flat", "28x28"])
def test_row_format_answers_an_object_per_instance(client, worker, shape):
    images = digits(3)
    response = client.post(PREDICT, json={"instances": images.reshape(3, *shape).tolist()})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"predictions": [
        {"labels": label, "probabilities": [FP32_TENTH] * 10} for label in stand_in_labels(images)
    ]}
    [job] = worker.sent  # one job, through the queue, of the model's type and shape
    assert job.inputs["inputdata"].dtype == np.float32
    np.testing.assert_array_equal(job.inputs["inputdata"], images.reshape(3, 784))


def test_row_format_instances_may_name_the_input(client):
    images = digits(2, random_seed=1)
    body = {"signature_name": "serving_default",
            "instances": [{"inputdata": image.tolist()} for image in images]}
    predictions = client.post(PREDICT, json=body).get_json()["predictions"]
    assert [prediction["labels"] for prediction in predictions] == stand_in_labels(images)


@pytest.mark.parametrize("named", [False, True], ids=["list", "named"])
def test_column_format_answers_a_column_per_output(client, named):
    images = digits(4, random_seed=2)
    inputs = images.reshape(4, 784).tolist()
    response = client.post(PREDICT, json={"inputs": {"inputdata": inputs} if named else inputs})
    assert response.get_json() == {"outputs": {"labels": stand_in_labels(images),
                                               "probabilities": [[FP32_TENTH] * 10] * 4}}


def test_values_are_the_inputs_type_sent_as_they_are(client, worker):
    """TF Serving's JSON has no types: values are the input's (float32 for MNIST), not rounded to pixels."""
    instance = [0.0, 12.4, 12.6, 254.5, 255] + [0] * 779
    response = client.post(PREDICT, json={"instances": [instance]})
    assert response.status_code == 200, response.get_json()
    sent = worker.sent[0].inputs["inputdata"]
    assert sent.dtype == np.float32 and sent.shape == (1, 784)
    np.testing.assert_array_equal(sent[0, :5], np.array([0.0, 12.4, 12.6, 254.5, 255], np.float32))
    assert response.get_json()["predictions"][0]["labels"] == fake_label(sent[0])


def test_a_go_server_model_answers_labels_alone(make_app, serve, labels_only):
    serve(spec=GO_SERVER_SPEC)
    app, worker = make_app()
    labels_only(worker)
    client = app.test_client()
    images = digits(3, random_seed=3)
    assert client.post(PREDICT, json={"instances": images.tolist()}).get_json() == {
        "predictions": stand_in_labels(images)}
    assert client.post(PREDICT, json={"inputs": images.tolist()}).get_json() == {"outputs": stand_in_labels(images)}
    signature = client.get("/v1/models/mnist/metadata").get_json()["metadata"]["signature_def"]["signature_def"]
    assert list(signature["serving_default"]["outputs"]) == ["labels"]


def test_a_version_is_addressed_by_number(client, worker, serve):
    images = digits(1)
    response = client.post("/v1/models/mnist/versions/3:predict", json={"instances": images.tolist()})
    assert response.get_json()["predictions"][0]["labels"] == stand_in_labels(images)[0]

    for path in ("/v1/models/mnist/versions/4:predict", "/v1/models/mnist/versions/4",
                 "/v1/models/mnist/versions/4/metadata"):
        method = "POST" if path.endswith(":predict") else "GET"
        response = client.open(path, method=method, json={"instances": images.tolist()})
        assert response.status_code == 404, path
        assert response.get_json()["error"] == "model 'mnist' version 4 is not served; served: 3"

    # A worker announces version 4, but the one that answers still has 3: no answer from the wrong one.
    serve(version=4, name="host:2")
    worker.version = 3
    response = client.post("/v1/models/mnist/versions/4:predict", json={"instances": images.tolist()})
    assert response.status_code == 503
    assert response.get_json()["error"] == ("version 4 was asked for but version 3 answered: the workers are "
                                            "changing versions; try again")
    assert worker.sent[-1].version == 4  # the job asked for it


@pytest.mark.parametrize("method, path, message", [
    ("GET", "/v1/models/fashion", "no model 'fashion'; served: 'mnist'"),
    ("GET", "/v1/models/fashion/metadata", "no model 'fashion'; served: 'mnist'"),
    ("POST", "/v1/models/fashion:predict", "no model 'fashion'; served: 'mnist'"),
    ("POST", "/v1/models/fashion:classify", "no model 'fashion'; served: 'mnist'"),
    ("POST", "/v1/models/mnist:regress", "inferq answers ':predict' and ':classify', not ':regress'"),
    ("POST", "/v1/models/mnist/versions/3:regress", "inferq answers ':predict' and ':classify', not ':regress'"),
])
def test_unknown_models_and_methods_are_404(client, method, path, message):
    response = client.open(path, method=method, json={"instances": digits(1).tolist()})
    assert (response.status_code, response.get_json()) == (404, {"error": message})


def test_the_models_name_is_the_one_its_workers_serve_it_under(make_app, serve):
    serve(spec=mnist_spec(STAND_IN_VERSION, name="digits"))  # a worker's MODEL_NAME
    app, _ = make_app(default_model="digits")
    client = app.test_client()
    assert client.get("/v1/models/digits").status_code == 200
    assert client.post("/v1/models/digits:predict", json={"instances": digits(1).tolist()}).status_code == 200
    response = client.get("/v1/models/mnist")
    assert (response.status_code, response.get_json()) == (404, {"error": "no model 'mnist'; served: 'digits'"})


def test_without_a_worker_the_model_is_unavailable(make_app):
    app, worker = make_app()
    response = app.test_client().post(PREDICT, json={"instances": digits(1).tolist()})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json() == {"error": "no worker has loaded model 'mnist' yet; try again shortly",
                                   "reason": "no_worker"}
    assert worker.sent == []


def test_a_failed_batch_is_a_server_error(client, worker):
    worker.model_error = "the model broke"
    response = client.post(PREDICT, json={"instances": digits(1).tolist()})
    assert response.status_code == 500
    body = response.get_json()
    assert body == {"error": "inference failed: the model broke", "job_id": body["job_id"]}


def test_the_api_key_guards_these_routes(make_app, serve):
    serve()
    app, _ = make_app(api_key="s3cret")
    client = app.test_client()
    assert client.get("/v1/models/mnist").status_code == 401
    assert client.get("/v1/models/mnist", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_broker_out_of_reach_is_a_503(make_app, unreachable_redis):
    app, _ = make_app(redis_client=unreachable_redis)
    response = app.test_client().post(PREDICT, json={"instances": digits(1).tolist()})
    assert (response.status_code, response.get_json()) == (503, BROKER_UNREACHABLE)
    assert response.headers["Retry-After"] == "1"
