"""Real clients over real HTTP, against the app wired to a real worker on a real Redis.

NVIDIA's tritonclient speaks KServe v2 (binary tensors by default); TF Serving's REST API is plain
JSON over HTTP, so urllib does for it. The worker's model answers ``REAL_LABEL`` for every image.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from tests.protocols.conftest import REAL_LABEL, REAL_VERSION
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def triton(server_address):
    client = InferenceServerClient(server_address)
    yield client
    client.close()


@pytest.fixture(scope="module")
def images(mnist_test) -> np.ndarray:
    return mnist_test[0][:6]


def test_health_and_metadata(triton):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("mnist")
    assert triton.is_model_ready("mnist", str(REAL_VERSION))
    assert not triton.is_model_ready("mnist", str(REAL_VERSION + 1))
    assert not triton.is_model_ready("fashion")

    server = triton.get_server_metadata()
    assert (server["name"], server["extensions"]) == ("inferq", ["binary_tensor_data", "schedule_policy",
                                                                 "model_configuration", "model_repository"])
    assert triton.get_model_metadata("mnist") == {
        "name": "mnist",
        "versions": [str(REAL_VERSION)],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [-1, 784]}],
        "outputs": [{"name": "labels", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }
    with pytest.raises(InferenceServerException) as missing:
        triton.get_model_metadata("fashion")
    assert missing.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
@pytest.mark.parametrize("shape", [(784,), (28, 28)], ids=["flat", "28x28"])
def test_infer(triton, images, binary, datatype, shape):
    infer_input = InferInput("inputdata", [len(images), *shape], datatype)
    infer_input.set_data_from_numpy(images.reshape(len(images), *shape).astype(np.float32 if datatype == "FP32"
                                                                                 else np.uint8), binary_data=binary)
    outputs = [InferRequestedOutput(name, binary_data=binary) for name in ("labels", "probabilities")]
    result = triton.infer("mnist", [infer_input], outputs=outputs, request_id="r-7")

    assert result.as_numpy("labels").tolist() == [REAL_LABEL] * len(images)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (len(images), 10)
    assert probabilities.argmax(axis=1).tolist() == [REAL_LABEL] * len(images)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == ("mnist", str(REAL_VERSION), "r-7")
    assert all(("data" in output) != binary for output in response["outputs"])


def test_infer_by_version_with_the_clients_defaults(triton, images):
    infer_input = InferInput("inputdata", [2, 784], "FP32")
    infer_input.set_data_from_numpy(images[:2].reshape(2, 784).astype(np.float32))
    result = triton.infer("mnist", [infer_input], model_version=str(REAL_VERSION))
    assert result.as_numpy("labels").tolist() == [REAL_LABEL] * 2
    assert result.as_numpy("probabilities").shape == (2, 10)

    with pytest.raises(InferenceServerException) as unserved:
        triton.infer("mnist", [infer_input], model_version=str(REAL_VERSION + 1))
    assert unserved.value.status() == "404"
    assert f"served: {REAL_VERSION}" in unserved.value.message()


def test_a_bad_tensor_is_the_clients_error(triton):
    infer_input = InferInput("inputdata", [1, 784], "FP64")  # wider than the model's FP32: not exact
    infer_input.set_data_from_numpy(np.full((1, 784), 0.5, np.float64))
    with pytest.raises(InferenceServerException) as refused:
        triton.infer("mnist", [infer_input])
    assert refused.value.status() == "400"
    assert "datatype 'FP64'; the model takes FP32 [-1, 784]" in refused.value.message()


def test_model_configuration_and_repository_index(triton):
    config = triton.get_model_config("mnist")
    assert (config["name"], config["max_batch_size"]) == ("mnist", 64)
    assert [(tensor["name"], tensor["data_type"], tensor["dims"]) for tensor in config["input"]] == [
        ("inputdata", "TYPE_FP32", [784])]
    assert triton.get_model_config("mnist", str(REAL_VERSION)) == config
    assert triton.get_model_repository_index() == [
        {"name": "mnist", "version": str(REAL_VERSION), "state": "READY", "reason": ""}]


def http(server_address: str, path: str, body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{server_address}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_tf_serving_status_and_metadata(server_address):
    assert http(server_address, "/v1/models/mnist") == (200, {"model_version_status": [
        {"version": str(REAL_VERSION), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    status, body = http(server_address, "/v1/models/mnist/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "mnist", "signature_name": "", "version": str(REAL_VERSION)}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["inputdata"]["name"] == "inputdata:0"  # as the worker loaded it
    assert sorted(signature["outputs"]) == ["labels", "probabilities"]


def test_tf_serving_predict_row_and_column(server_address, images):
    status, body = http(server_address, "/v1/models/mnist:predict", {"instances": images.tolist()})
    assert status == 200, body
    assert [prediction["labels"] for prediction in body["predictions"]] == [REAL_LABEL] * len(images)
    assert all(np.argmax(prediction["probabilities"]) == REAL_LABEL for prediction in body["predictions"])

    path = f"/v1/models/mnist/versions/{REAL_VERSION}:predict"
    status, body = http(server_address, path, {"inputs": {"inputdata": images.reshape(-1, 784).tolist()}})
    assert status == 200, body
    assert body["outputs"]["labels"] == [REAL_LABEL] * len(images)
    assert np.asarray(body["outputs"]["probabilities"]).shape == (len(images), 10)


def test_tf_serving_errors(server_address, images):
    status, body = http(server_address, f"/v1/models/mnist/versions/{REAL_VERSION + 1}:predict",
                        {"instances": images.tolist()})
    assert (status, body) == (404, {"error": f"model 'mnist' version {REAL_VERSION + 1} is not served; "
                                             f"served: {REAL_VERSION}"})
    status, body = http(server_address, "/v1/models/mnist:predict", {"instances": [[1, 2, 3]]})
    assert status == 400
    assert "shape [1, 3]" in body["error"]


def test_answers_come_from_the_worker_through_the_queue(real_worker, triton, server_address, images):
    before = images_answered(real_worker)
    infer_input = InferInput("inputdata", [len(images), 784], "UINT8")
    infer_input.set_data_from_numpy(images.reshape(-1, 784))
    triton.infer("mnist", [infer_input])
    assert http(server_address, "/v1/models/mnist:predict", {"instances": images.tolist()})[0] == 200
    wait_for(lambda: images_answered(real_worker) >= before + 2 * len(images), 10,
             "the worker's heartbeat to count both requests' images")


def images_answered(worker) -> int:
    return sum(beat["images"] for beat in worker.heartbeats())
