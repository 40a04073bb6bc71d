"""The v2 gRPC SDKs whose pins the project's venv cannot take (protobuf<7), each in a side venv
(``tests.support.side_venv``), against the gRPC front end's own process, a real worker and a real
Redis: the KServe Python SDK (``kserve.InferenceGRPCClient``) and tritonclient[grpc] as its users
install it. One venv holds both (their pins agree); each runs in a process of its own
(``tests/protocols/side_clients``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.protocols.conftest import API_KEY, REAL_LABEL, REAL_VERSION
from tests.support.side_venv import side_python

pytestmark = pytest.mark.integration

#: Pinned: what the side venv holds is what these tests were written against.
SDKS = ("kserve==0.21.0", "tritonclient[grpc]==2.73.0")
CLIENTS = Path(__file__).parent / "side_clients"
IMAGES = 4


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    return side_python(*SDKS)


@pytest.fixture(scope="module")
def images_file(mnist_test, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sdk") / "images.npy"
    np.save(path, mnist_test[0][:IMAGES])
    return path


def run_client(python: Path, script: str, address: str, images: Path) -> dict:
    done = subprocess.run([str(python), str(CLIENTS / script), address, API_KEY, str(images)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_answered(answer: dict, count: int, outputs: tuple[str, ...] = ("labels", "probabilities")) -> None:
    assert answer["outputs"] == sorted(outputs)
    assert answer["labels"] == [REAL_LABEL] * count
    assert answer["labels_dtype"] == "int64"
    assert answer["model_version"] == str(REAL_VERSION)
    if "probabilities" in outputs:
        probabilities = np.array(answer["probabilities"])
        assert probabilities.shape == (count, 10)
        assert probabilities.argmax(axis=1).tolist() == [REAL_LABEL] * count
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)


def test_the_kserve_sdk(sdk_python, grpc_process, images_file):
    seen = run_client(sdk_python, "kserve_calls.py", grpc_process.address, images_file)
    assert (seen["live"], seen["ready"], seen["model_ready"], seen["unknown_model_ready"]) == (True, True, True, False)
    assert seen["server_metadata"]["name"] == "inferq"
    assert "binary_tensor_data" in seen["server_metadata"]["extensions"]
    assert seen["model_metadata"] == {
        "name": "mnist", "versions": [str(REAL_VERSION)], "platform": "tensorflow_savedmodel",
        "inputs": [["inputdata", "FP32", [-1, 784]]],
        "outputs": [["labels", "INT64", [-1]], ["probabilities", "FP32", [-1, 10]]]}
    # FP32 and UINT8 (a narrower type the model's FP32 takes exactly), raw and typed contents.
    assert_answered(seen["fp32_raw"], IMAGES)
    assert seen["fp32_raw"]["id"] == "k-1"
    assert_answered(seen["fp32_typed"], 2, outputs=("labels",))
    assert_answered(seen["uint8_raw"], 3)
    assert_answered(seen["uint8_typed"], 1)
    assert seen["wrong_datatype"]["code"] == "INVALID_ARGUMENT"
    assert "datatype 'INT32'; the model takes FP32 [-1, 784]" in seen["wrong_datatype"]["message"]
    assert seen["bytes"]["code"] == "INVALID_ARGUMENT"
    assert "datatype 'BYTES'; the model takes FP32 [-1, 784]" in seen["bytes"]["message"]
    assert seen["unknown_model"]["code"] == "NOT_FOUND"
    assert "fashion" in seen["unknown_model"]["message"]
    assert seen["no_key"]["code"] == "UNAUTHENTICATED"


def test_tritonclient_grpc_on_its_own_pins(sdk_python, grpc_process, images_file):
    seen = run_client(sdk_python, "triton_calls.py", grpc_process.address, images_file)
    assert seen["protobuf"].startswith("6.")  # its pins' protobuf, not the project's 7
    assert (seen["live"], seen["ready"], seen["model_ready"]) == (True, True, True)
    assert seen["model_metadata"]["inputs"] == [{"name": "inputdata", "datatype": "FP32", "shape": ["-1", "784"]}]
    assert seen["config"] == {"name": "mnist", "max_batch_size": 64}
    assert seen["infer"] == {"labels": [REAL_LABEL] * IMAGES, "probabilities_shape": [IMAGES, 10], "id": "t-1"}
    assert seen["async_infer"] == {"labels": [REAL_LABEL] * IMAGES, "error": None}
    assert seen["stream_infer"] == {"labels": [REAL_LABEL] * IMAGES, "error": None, "id": "s-1"}
    assert seen["wrong_datatype"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "datatype 'INT32'; the model takes FP32 [-1, 784]" in seen["wrong_datatype"]["message"]
