"""tritonclient.grpc, TF Serving's own client stubs (tensorflow-serving-api) and grpc.health.v1 against
the gRPC front end's own process (``python -m api.grpc``, as ``make up`` starts it), a real worker and
a real Redis: the answers come from the model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from grpc_health.v1 import health_pb2
from tritonclient.utils import InferenceServerException

from launcher import grpc_command
from launcher.processes import descendants, free_port
from tests.protocols.conftest import KEY, REAL_LABEL, REAL_VERSION, health
from tests.support.processes import REPO
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def triton(grpc_process) -> Iterator[triton_grpc.InferenceServerClient]:
    client = triton_grpc.InferenceServerClient(grpc_process[1])
    yield client
    client.close()


@pytest.fixture(scope="module")
def images(mnist_test) -> np.ndarray:
    return mnist_test[0][:6]


def test_the_processes_never_import_tensorflow(grpc_process):
    pids = [grpc_process[0].pid, *descendants(grpc_process[0].pid)]
    assert len(pids) >= 3  # GRPC_PROCESSES (2) servers under the one started
    for pid in pids:
        assert "tensorflow" not in Path(f"/proc/{pid}/maps").read_text(), pid
    # And the modules it runs, imported afresh, import none either.
    # TF Serving's services too: their messages are api.grpc.tfserving.protos', not tensorflow's.
    probe = subprocess.run([sys.executable, "-c", "import sys, api.grpc.server, api.grpc.servicer, api, "
                            "api.grpc.tfserving.servicer; print(sorted({m.split('.')[0] for m in sys.modules} & "
                            "{'tensorflow', 'tensorflow_serving', 'xla', 'keras'}))"], cwd=REPO, capture_output=True,
                           text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    assert probe.stdout.strip() == "[]"


def test_health_and_metadata(triton):
    assert triton.is_server_live(headers=KEY)
    assert triton.is_server_ready(headers=KEY)
    assert triton.is_model_ready("mnist", headers=KEY)
    assert triton.is_model_ready("mnist", str(REAL_VERSION), headers=KEY)
    assert not triton.is_model_ready("mnist", str(REAL_VERSION + 1), headers=KEY)
    server = triton.get_server_metadata(headers=KEY, as_json=True)
    assert (server["name"], server["extensions"]) == ("inferq", ["binary_tensor_data", "schedule_policy",
                                                                 "model_configuration", "model_repository"])
    assert triton.get_model_metadata("mnist", headers=KEY, as_json=True) == {
        "name": "mnist",
        "versions": [str(REAL_VERSION)],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "inputdata", "datatype": "FP32", "shape": ["-1", "784"]}],
        "outputs": [{"name": "labels", "datatype": "INT64", "shape": ["-1"]},
                    {"name": "probabilities", "datatype": "FP32", "shape": ["-1", "10"]}],
    }


def test_the_key_is_needed_but_not_for_health_checking(grpc_process, triton):
    with pytest.raises(InferenceServerException) as refused:
        triton.is_server_live()
    assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
    assert health(grpc_process[1]) == health_pb2.HealthCheckResponse.SERVING


def infer_input(images: np.ndarray, datatype: str = "FP32", shape: tuple[int, ...] = (784,)) -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput("inputdata", [len(images), *shape], datatype)
    tensor.set_data_from_numpy(images.reshape(len(images), *shape).astype(np.float32 if datatype == "FP32"
                                                                          else np.uint8))
    return tensor


def assert_answered(result, count: int) -> None:
    assert result.as_numpy("labels").tolist() == [REAL_LABEL] * count
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (count, 10)
    assert probabilities.argmax(axis=1).tolist() == [REAL_LABEL] * count
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)


@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
@pytest.mark.parametrize("shape", [(784,), (28, 28)], ids=["flat", "28x28"])
def test_infer(triton, images, datatype, shape):
    result = triton.infer("mnist", [infer_input(images, datatype, shape)], request_id="r-7", headers=KEY)
    assert_answered(result, len(images))
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("mnist", str(REAL_VERSION), "r-7")


def test_infer_by_version_and_priority(triton, images):
    result = triton.infer("mnist", [infer_input(images[:2])], model_version=str(REAL_VERSION), priority=2,
                          headers=KEY)
    assert_answered(result, 2)
    with pytest.raises(InferenceServerException) as unserved:
        triton.infer("mnist", [infer_input(images[:2])], model_version=str(REAL_VERSION + 1), headers=KEY)
    assert unserved.value.status() == "StatusCode.NOT_FOUND"
    assert f"served: {REAL_VERSION}" in unserved.value.message()


def test_async_infer(triton, images):
    done = threading.Event()
    answers: list = []

    def callback(result, error) -> None:
        answers.append((result, error))
        if len(answers) == 3:
            done.set()

    for count in (1, 2, 3):
        triton.async_infer("mnist", [infer_input(images[:count])], callback=callback, headers=KEY)
    assert done.wait(30)
    assert all(error is None for _, error in answers)
    assert sorted(len(result.as_numpy("labels")) for result, _ in answers) == [1, 2, 3]
    for result, _ in answers:
        assert_answered(result, len(result.as_numpy("labels")))


def test_stream_infer(triton, images):
    answers: list = []
    done = threading.Event()

    def callback(result, error) -> None:
        answers.append((result, error))
        if len(answers) == 2:
            done.set()

    triton.start_stream(callback=callback, headers=KEY)
    triton.async_stream_infer("mnist", [infer_input(images[:2])], request_id="s-1")
    triton.async_stream_infer("mnist", [infer_input(images[:3], "UINT8")], request_id="s-2")
    assert done.wait(30)
    triton.stop_stream()
    assert [error for _, error in answers] == [None, None]
    assert [result.get_response().id for result, _ in answers] == ["s-1", "s-2"]
    assert_answered(answers[0][0], 2)
    assert_answered(answers[1][0], 3)


def test_a_bad_tensor_is_the_clients_error(triton):
    tensor = triton_grpc.InferInput("inputdata", [1, 784], "FP64")  # wider than the model's FP32: not exact
    tensor.set_data_from_numpy(np.full((1, 784), 0.5, np.float64))
    with pytest.raises(InferenceServerException) as refused:
        triton.infer("mnist", [tensor], headers=KEY)
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "datatype 'FP64'; the model takes FP32 [-1, 784]" in refused.value.message()


def test_model_configuration_and_repository_index(triton):
    config = triton.get_model_config("mnist", headers=KEY, as_json=True)["config"]
    assert (config["name"], config["max_batch_size"]) == ("mnist", 64)
    assert [(tensor["name"], tensor["data_type"], tensor["dims"]) for tensor in config["input"]] == [
        ("inputdata", "TYPE_FP32", ["784"])]
    assert triton.get_model_config("mnist", str(REAL_VERSION), headers=KEY, as_json=True)["config"] == config
    assert triton.get_model_repository_index(headers=KEY, as_json=True) == {
        "models": [{"name": "mnist", "version": str(REAL_VERSION), "state": "READY"}]}


# --- TF Serving's PredictionService and ModelService, with its own stubs --------------------------------

@pytest.fixture(scope="module")
def tf_serving(grpc_process):
    """TF Serving's two stubs (tensorflow-serving-api's), on the front end's process."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    with grpc.insecure_channel(grpc_process[1]) as channel:
        yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
               model_service_pb2_grpc.ModelServiceStub(channel))


TF_KEY = list(KEY.items())


@pytest.mark.parametrize("dtype", [np.float32, np.uint8], ids=["float32", "uint8"])
def test_tf_serving_predict(tf_serving, images, dtype):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    request.inputs["inputdata"].CopyFrom(tf.make_tensor_proto(images.reshape(len(images), 784).astype(dtype)))
    response = tf_serving[0].Predict(request, metadata=TF_KEY, timeout=30)
    assert tf.make_ndarray(response.outputs["labels"]).tolist() == [REAL_LABEL] * len(images)
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    assert probabilities.shape == (len(images), 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert (response.model_spec.version.value, response.model_spec.signature_name) == (REAL_VERSION,
                                                                                     "serving_default")


def test_tf_serving_classify_metadata_and_status(tf_serving, images):
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, get_model_status_pb2

    prediction, models = tf_serving
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "mnist"
    for image in images[:2]:
        request.input.example_list.examples.add().features.feature["inputdata"].float_list.value.extend(
            image.reshape(784).astype(float).tolist())
    classified = prediction.Classify(request, metadata=TF_KEY, timeout=30)
    assert [item.classes[0].label for item in classified.result.classifications] == [str(REAL_LABEL)] * 2

    asked = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    asked.model_spec.name = "mnist"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    prediction.GetModelMetadata(asked, metadata=TF_KEY, timeout=30).metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert sorted(signature.outputs) == ["labels", "probabilities"]
    assert signature.inputs["inputdata"].dtype == tf.float32.as_datatype_enum

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "mnist"
    [version] = models.GetModelStatus(status, metadata=TF_KEY, timeout=30).model_version_status
    assert (version.version, version.state) == (REAL_VERSION, get_model_status_pb2.ModelVersionStatus.AVAILABLE)


def test_tf_serving_refusals_are_status_codes(tf_serving):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    request.inputs["inputdata"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 10), np.float32)))
    with pytest.raises(grpc.RpcError) as shape:
        tf_serving[0].Predict(request, metadata=TF_KEY, timeout=30)
    assert (shape.value.code(), shape.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "input 'inputdata': shape [1, 10]; the model takes float32 [-1, 784] "
                                          "(-1: any size; the first dimension is the batch)")
    request.model_spec.version.value = REAL_VERSION + 1
    with pytest.raises(grpc.RpcError) as unserved:
        tf_serving[0].Predict(request, metadata=TF_KEY, timeout=30)
    assert unserved.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as keyless:
        tf_serving[0].Predict(request, timeout=30)
    assert keyless.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_sigterm_stops_it_cleanly(real_worker, own_redis_url, tmp_path):
    port = free_port()
    env = dict(os.environ, REDIS_URL=own_redis_url, QUEUE_NAME="protocols", GRPC_PORT=str(port),
               GRPC_METRICS_PORT=str(free_port()))
    process = subprocess.Popen(grpc_command(), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    try:
        wait_for(lambda: health(address) == health_pb2.HealthCheckResponse.SERVING, 30, "the gRPC front end")
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
