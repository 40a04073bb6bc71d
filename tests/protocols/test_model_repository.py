"""Six models of every shape served at once by one worker, through every protocol, over real HTTP.

The repository holds an MNIST model as inferq's trainer writes it and the five of
``tests.support.saved_models`` (images uint8 and float, tabular with two outputs, two inputs of two
types, strings). For each, the answers must equal the model's own (``offline_outputs``, TensorFlow 2
in eager mode), through TF Serving's REST API, KServe v2 as JSON and as binary (tritonclient), and
the image routes where it takes images. Models are then added and removed while the system runs.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from api.images.inputs import image_input, to_model_values
from api.images.preprocessing import decode_for
from inferq import model_config
from inferq.model_spec import ModelSpec
from inferq.settings import Settings
from tests.protocols.conftest import served_over_http
from tests.support import saved_models
from tests.support.models import build_model
from tests.support.processes import WorkerProcess, worker_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

TENSOR_MODELS = ("mnist_like", "cifar_like", "tabular", "two_inputs", "text")
#: The MNIST model's label for every image.
MNIST_LABEL = 4


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repository")
    saved_models.build_all(repo)
    build_model(repo / "mnist", 1, label=MNIST_LABEL)
    return repo


@pytest.fixture(scope="module")
def worker(repository, own_redis_url, tmp_path_factory) -> Iterator[WorkerProcess]:
    env = worker_env(own_redis_url, repository, "repo")
    del env["MODEL_DIR"]
    env["MODEL_REPOSITORY"] = str(repository)
    process = WorkerProcess(env, tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        wait_for(lambda: {spec["name"] for beat in process.heartbeats() for spec in beat["models"]}
                 >= {"mnist", *TENSOR_MODELS} and " ready." in process.log(), 120, "every model to be served")
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def address(worker, own_redis_url, repository) -> Iterator[str]:
    with served_over_http(Settings(redis_url=own_redis_url, queue_name="repo", heartbeat_interval_s=0.5,
                                   model_repository=str(repository))) as served:
        yield served


def call(address: str, path: str, body: object = None, *, data: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    if body is not None:
        data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    request = urllib.request.Request(f"http://{address}{path}", data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def spec_of(address: str, name: str) -> ModelSpec:
    status, described = call(address, f"/models/{name}")
    assert status == 200, described
    return ModelSpec.from_json({**described, "version": described["versions"][-1],
                                "config": {"labels": described["labels"]}})


def assert_same(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert set(got) == set(expected)
    for name, values in expected.items():
        if values.dtype == object:
            # tritonclient gives JSON strings back as str, binary ones as bytes.
            items = [item.encode() if isinstance(item, str) else bytes(item) for item in np.asarray(got[name]).ravel()]
            assert items == list(values.ravel()), name
        elif values.dtype.kind == "f":
            np.testing.assert_allclose(np.asarray(got[name], np.float64), values, rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(np.asarray(got[name]), values, err_msg=name)


def as_json(values: np.ndarray) -> object:
    return [item.decode() for item in values.tolist()] if values.dtype == object else values.tolist()


@pytest.mark.parametrize("name", TENSOR_MODELS)
def test_tf_serving_rows_and_columns_answer_as_the_model_itself(address, repository, name):
    inputs = saved_models.sample_inputs(name, 3, random_seed=1)
    expected = saved_models.offline_outputs(repository / name / "1", inputs)
    if len(inputs) == 1:  # TF Serving names the input only where there are several
        (only,) = inputs.values()
        rows, columns = as_json(only), as_json(only)
    else:
        rows = [{key: as_json(values[index]) if values.dtype != object else values[index].decode()
                 for key, values in inputs.items()} for index in range(3)]
        columns = {key: as_json(values) for key, values in inputs.items()}
    status, answer = call(address, f"/v1/models/{name}:predict", {"instances": rows})
    assert status == 200, answer
    predictions = answer["predictions"]
    if len(expected) == 1:
        got = {next(iter(expected)): predictions}
    else:
        got = {key: [row[key] for row in predictions] for key in expected}
    assert_same({key: _strings_back(value) for key, value in got.items()}, expected)
    status, answer = call(address, f"/v1/models/{name}:predict", {"inputs": columns})
    assert status == 200, answer
    outputs = answer["outputs"] if len(expected) > 1 else {next(iter(expected)): answer["outputs"]}
    assert_same({key: _strings_back(value) for key, value in outputs.items()}, expected)


def _strings_back(values: object) -> object:
    if isinstance(values, list) and values and isinstance(values[0], str):
        return np.array([value.encode() for value in values], dtype=object)
    return values


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("name", TENSOR_MODELS)
def test_kserve_v2_through_tritonclient_answers_as_the_model_itself(address, repository, name, binary):
    inputs = saved_models.sample_inputs(name, 4, random_seed=2)
    expected = saved_models.offline_outputs(repository / name / "1", inputs)
    spec = spec_of(address, name)
    with InferenceServerClient(address) as triton:
        sent = []
        for tensor in spec.inputs:
            values = inputs[tensor.name]
            infer_input = InferInput(tensor.name, list(values.shape), tensor.type.kserve)
            infer_input.set_data_from_numpy(values, binary_data=binary)
            sent.append(infer_input)
        wanted = [InferRequestedOutput(tensor.name, binary_data=binary) for tensor in spec.outputs]
        result = triton.infer(name, sent, outputs=wanted)
    assert_same({key: result.as_numpy(key) for key in expected}, expected)


def png(array: np.ndarray) -> bytes:
    image = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["mnist_like", "cifar_like"])
def test_image_uploads_go_through_the_models_preprocessing_and_answer_with_class_names(address, repository, name):
    spec = dataclasses.replace(spec_of(address, name), config=model_config.load(repository / name))
    geometry = image_input(spec)
    rng = np.random.default_rng(3)
    pictures = [rng.integers(0, 256, (40, 30, geometry.channels), dtype=np.uint8) for _ in range(2)]
    files = [png(picture) for picture in pictures]
    boundary = "inferq-test-boundary"
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{index}.png\"\r\n"
        f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n" for index, data in enumerate(files)
    ) + f"--{boundary}--\r\n".encode()
    status, answer = call(address, f"/models/{name}/recognize", data=body,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, answer
    pixels = np.stack([decode_for(data, geometry, max_pixels=10**7) for data in files])
    # The model's own answer for the same values, in the type it takes (the worker casts to it).
    values = to_model_values(pixels, geometry).astype(geometry.tensor.dtype)
    expected = saved_models.offline_outputs(repository / name / "1", {geometry.tensor.name: values})
    (scores,) = expected.values()
    for item, row, filename in zip(answer["results"], scores, ["0.png", "1.png"], strict=True):
        names = spec.config.labels
        assert item["filename"] == filename and item["model_version"] == 1
        assert item["labels"] == [names[int(np.argmax(row))]]
        assert [entry["label"] for entry in item["top"]] == [names[k] for k in np.argsort(-row, kind="stable")[:5]]
        np.testing.assert_allclose([entry["score"] for entry in item["top"]], np.sort(row)[::-1][:5], rtol=1e-5)


def test_the_default_model_keeps_the_seeds_answer_beside_the_others(address, digit_104):
    status, answer = call(address, "/recognize", data=_multipart("104.png", digit_104),
                          headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert status == 200, answer
    assert answer["filename"] == "104.png" and answer["labels"] == [MNIST_LABEL] and answer["model_version"] == 1
    assert "outputs" not in answer


def _multipart(filename: str, data: bytes) -> bytes:
    return (f"--b0undary\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + b"\r\n--b0undary--\r\n"


def test_a_tensor_that_does_not_fit_the_signature_never_reaches_a_worker(address):
    status, answer = call(address, "/v1/models/two_inputs:predict", {"instances": [{"ids": [1] * 16}]})
    assert status == 400 and "weights" in answer["error"]
    status, answer = call(address, "/v2/models/tabular/infer", {"inputs": [
        {"name": "features", "datatype": "FP32", "shape": [1, 5], "data": [0.0] * 5}]})
    assert status == 400 and "[-1, 4]" in answer["error"]
    status, answer = call(address, "/v2/models/nope/infer", {"inputs": []})
    assert status == 404 and "nope" in answer["error"]


def test_models_added_and_removed_while_the_system_runs(address, repository):
    status, listed = call(address, "/models")
    assert status == 200 and {"mnist", *TENSOR_MODELS} <= {model["name"] for model in listed["models"]}
    added = repository / "tabular_copy"
    shutil.copytree(repository / "tabular", added)

    def listed_names() -> set[str]:
        return {model["name"] for model in call(address, "/models")[1]["models"]}

    wait_for(lambda: "tabular_copy" in listed_names(), 30, "the added model to be served")
    inputs = saved_models.sample_inputs("tabular", 2, random_seed=4)
    expected = saved_models.offline_outputs(repository / "tabular" / "1", inputs)
    status, answer = call(address, "/v1/models/tabular_copy:predict", {"inputs": as_json(inputs["features"])})
    assert status == 200, answer
    assert_same(answer["outputs"], expected)

    shutil.rmtree(added)
    wait_for(lambda: "tabular_copy" not in listed_names(), 30, "the removed model to be dropped")
    status, answer = call(address, "/v1/models/tabular_copy:predict", {"inputs": as_json(inputs["features"])})
    assert status == 404, answer
    status, answer = call(address, "/v1/models/tabular:predict", {"inputs": as_json(inputs["features"])})
    assert status == 200, answer
