"""KServe v2 on the stand-in worker: each route's body, JSON and binary tensors, outputs, versions."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from tests.protocols.conftest import GO_SERVER_SPEC
from tests.protocols.helpers import digits, stand_in_labels

INFER = "/v2/models/mnist/infer"
HEADER_LENGTH = "Inference-Header-Content-Length"


def tensor(images: np.ndarray, datatype: str = "FP32", **fields) -> dict:
    return {"name": "inputdata", "shape": list(images.shape), "datatype": datatype,
            "data": images.ravel().tolist(), **fields}


#: The stand-in's probabilities, 0.1 as FP32, written as JSON writes the FP32 value: exactly.
FP32_TENTH = float(np.float32(0.1))


def assert_sent(job, images: np.ndarray, datatype: str) -> None:
    """The job holds the images as the model's input [N, 784], of the type sent: UINT8 pixels stay
    UINT8 (the worker casts them to FP32), a quarter of the message."""
    sent = job.inputs["inputdata"]
    assert sent.dtype == (np.float32 if datatype == "FP32" else np.uint8)
    np.testing.assert_array_equal(sent, images.reshape(len(images), 784))


def test_server_metadata_names_the_extensions(client):
    assert client.get("/v2").get_json() == {"name": "inferq", "version": importlib.metadata.version("inferq"),
                                            "extensions": ["binary_tensor_data", "schedule_policy",
                                                           "model_configuration", "model_repository"]}


def test_live_whatever_the_broker(make_app, unreachable_redis):
    app, _ = make_app(redis_client=unreachable_redis)
    response = app.test_client().get("/v2/health/live")
    assert (response.status_code, response.get_json()) == (200, {"live": True})


@pytest.mark.parametrize("path", ["/v2/health/ready", "/v2/models/mnist/ready"])
def test_ready_once_a_worker_serves_the_model(make_app, serve, path):
    app, _ = make_app()
    client = app.test_client()
    response = client.get(path)
    assert response.status_code == 400  # the protocol's "false": any 4xx
    assert response.get_json() == {"error": "no worker has loaded model 'mnist' yet; try again shortly", "ready": False}
    serve()
    assert (client.get(path).status_code, client.get(path).get_json()) == (200, {"ready": True})


def test_not_ready_when_the_broker_is_down(make_app, unreachable_redis):
    app, _ = make_app(redis_client=unreachable_redis)
    response = app.test_client().get("/v2/health/ready")
    assert response.status_code == 400
    assert response.get_json()["ready"] is False


def test_model_readiness_by_version_and_name(client):
    assert client.get("/v2/models/mnist/versions/3/ready").status_code == 200
    response = client.get("/v2/models/mnist/versions/4/ready")
    assert (response.status_code, response.get_json()["ready"]) == (404, False)
    assert client.get("/v2/models/fashion/ready").status_code == 404


def test_model_metadata(client, serve):
    serve(version=2, name="host:2")
    body = client.get("/v2/models/mnist").get_json()
    assert body == {
        "name": "mnist",
        "versions": ["2", "3"],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [-1, 784]}],
        "outputs": [{"name": "labels", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }
    assert client.get("/v2/models/mnist/versions/2").get_json() == body
    assert client.get("/v2/models/mnist/versions/9").status_code == 404
    assert client.get("/v2/models/fashion").status_code == 404


@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
@pytest.mark.parametrize("shape", [(784,), (28, 28)], ids=["flat", "28x28"])
def test_infer_with_json_tensors(client, worker, datatype, shape):
    images = digits(3)
    request = {"id": "r-1", "inputs": [tensor(images.reshape(3, *shape), datatype)]}
    response = client.post(INFER, json=request)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "model_name": "mnist",
        "model_version": "3",
        "id": "r-1",
        "outputs": [
            {"name": "labels", "datatype": "INT64", "shape": [3], "data": stand_in_labels(images)},
            {"name": "probabilities", "datatype": "FP32", "shape": [3, 10], "data": [FP32_TENTH] * 30},
        ],
    }
    [job] = worker.sent  # one job, through the queue
    assert_sent(job, images, datatype)


def test_nested_json_data_is_taken_in_row_major_order(client):
    images = digits(2, random_seed=1)
    request = {"inputs": [{"name": "inputdata", "shape": [2, 784], "datatype": "UINT8", "data": images.tolist()}]}
    assert client.post(INFER, json=request).get_json()["outputs"][0]["data"] == stand_in_labels(images)


def test_only_the_outputs_asked_for_in_the_order_asked(client):
    images = digits(2, random_seed=2)
    request = {"inputs": [tensor(images)], "outputs": [{"name": "probabilities"}, {"name": "labels"}]}
    outputs = client.post(INFER, json=request).get_json()["outputs"]
    assert [output["name"] for output in outputs] == ["probabilities", "labels"]
    request["outputs"] = [{"name": "labels"}]
    assert client.post(INFER, json=request).get_json()["outputs"] == [
        {"name": "labels", "datatype": "INT64", "shape": [2], "data": stand_in_labels(images)}]


def triton_request(images: np.ndarray, datatype: str, binary_in: bool, outputs=None) -> tuple[bytes, dict]:
    """The body and headers tritonclient would send."""
    infer_input = InferInput("inputdata", list(images.shape), datatype)
    infer_input.set_data_from_numpy(images.astype(np.float32 if datatype == "FP32" else np.uint8),
                                    binary_data=binary_in)
    body, json_size = InferenceServerClient.generate_request_body([infer_input], outputs=outputs)
    return body, ({} if json_size is None else {HEADER_LENGTH: str(json_size)})


def parse(response):
    """The response as tritonclient reads it."""
    return InferenceServerClient.parse_response_body(response.data,
                                                     header_length=int(response.headers[HEADER_LENGTH]))


@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
def test_binary_tensors_both_ways(client, worker, datatype):
    images = digits(5, random_seed=3)
    body, headers = triton_request(images, datatype, binary_in=True)
    assert HEADER_LENGTH in headers
    response = client.post(INFER, data=body, headers=headers)
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "application/octet-stream"
    result = parse(response)
    assert all("data" not in output for output in result.get_response()["outputs"])
    assert result.as_numpy("labels").tolist() == stand_in_labels(images)
    assert result.as_numpy("labels").dtype == np.int64
    np.testing.assert_array_equal(result.as_numpy("probabilities"), np.full((5, 10), 0.1, np.float32))
    assert_sent(worker.sent[0], images, datatype)


def test_binary_and_json_outputs_mix(client):
    images = digits(2, random_seed=4)
    outputs = [InferRequestedOutput("labels", binary_data=False), InferRequestedOutput("probabilities")]
    body, headers = triton_request(images.reshape(2, 784), "UINT8", binary_in=False, outputs=outputs)
    assert headers == {}
    result = parse(client.post(INFER, data=body, headers=headers))
    assert result.get_output("labels")["data"] == stand_in_labels(images)
    assert result.get_output("probabilities")["parameters"] == {"binary_data_size": 2 * 10 * 4}
    assert result.as_numpy("probabilities").shape == (2, 10)


def test_json_outputs_are_plain_json(client):
    images = digits(1)
    body, headers = triton_request(images, "FP32", binary_in=True, outputs=[InferRequestedOutput("labels", False)])
    response = client.post(INFER, data=body, headers=headers)
    assert response.mimetype == "application/json"
    assert HEADER_LENGTH not in response.headers
    assert response.get_json()["outputs"][0]["data"] == stand_in_labels(images)


def test_a_go_server_model_has_labels_alone(make_app, serve, labels_only):
    serve(spec=GO_SERVER_SPEC)
    app, worker = make_app()
    labels_only(worker)
    client = app.test_client()
    images = digits(2)
    assert [output["name"] for output in client.get("/v2/models/mnist").get_json()["outputs"]] == ["labels"]
    outputs = client.post(INFER, json={"inputs": [tensor(images)]}).get_json()["outputs"]
    assert outputs == [{"name": "labels", "datatype": "INT64", "shape": [2], "data": stand_in_labels(images)}]
    response = client.post(INFER, json={"inputs": [tensor(images)], "outputs": [{"name": "probabilities"}]})
    assert response.status_code == 400
    assert response.get_json()["error"] == ("model 'mnist' version 3 has no output 'probabilities'; it has 'labels' "
                                            "(INT64 [-1])")


def test_an_answer_without_an_output_the_heartbeat_promised_is_refused(client, worker, labels_only):
    labels_only(worker)  # the workers' model changed after the request was checked
    response = client.post(INFER, json={"inputs": [tensor(digits(1))]})
    assert response.status_code == 503
    assert response.get_json()["error"] == ("model version 3 answered without 'probabilities': the served model "
                                            "changed; try again")


def test_a_version_is_addressed_by_number(client):
    images = digits(1)
    response = client.post("/v2/models/mnist/versions/3/infer", json={"inputs": [tensor(images)]})
    assert response.get_json()["model_version"] == "3"
    response = client.post("/v2/models/mnist/versions/8/infer", json={"inputs": [tensor(images)]})
    assert response.status_code == 404
    assert response.get_json()["error"] == "model 'mnist' version 8 is not served; served: 3"
    assert client.post("/v2/models/fashion/infer", json={"inputs": [tensor(images)]}).status_code == 404


def test_the_api_key_guards_these_routes(make_app, serve):
    serve()
    app, _ = make_app(api_key="s3cret")
    client = app.test_client()
    assert client.post(INFER, json={"inputs": [tensor(digits(1))]}).status_code == 401
    assert client.get("/v2", headers={"Authorization": "Bearer s3cret"}).status_code == 200
