"""KServe v2 over gRPC on the stand-in worker, with tritonclient.grpc and Triton's own stub: each RPC,
every datatype both ways (raw and typed contents), and the HTTP route's refusals as status codes."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import queue
import shutil
import struct
import subprocess
import time

import grpc
import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from inferq import keys
from inferq.model_spec import ANY, ModelSpec, TensorSpec
from tests.protocols.conftest import served_over_grpc
from tests.protocols.helpers import digits, stand_in_labels

#: Every datatype the HTTP v2 route takes, by the TensorFlow type it stands for.
DATATYPES = {"bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
             "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16",
             "float32": "FP32", "float64": "FP64", "string": "BYTES"}
#: A model of one input and one output of each type, [-1, 3]: the stand-in echoes each input.
EVERY_TYPE = ModelSpec("every", 1, "serving_default",
                       tuple(TensorSpec(f"in_{name}", name, (ANY, 3), f"in_{name}:0") for name in DATATYPES),
                       tuple(TensorSpec(f"out_{name}", name, (ANY, 3), f"out_{name}:0") for name in DATATYPES))


@contextlib.contextmanager
def triton_client(app, **settings):
    with served_over_grpc(app) as address:
        client = triton_grpc.InferenceServerClient(address)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture
def stand_in(make_app, serve):
    serve()
    return make_app(max_images_per_request=4)


@pytest.fixture
def triton(stand_in):
    with triton_client(stand_in[0]) as client:
        yield client


@pytest.fixture
def stub(stand_in):
    """Triton's own generated stub (tritonclient's), for messages tritonclient does not build."""
    with served_over_grpc(stand_in[0]) as address, grpc.insecure_channel(address) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def infer_input(images: np.ndarray, datatype: str = "FP32", name: str = "inputdata") -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput(name, list(images.shape), datatype)
    tensor.set_data_from_numpy(images)
    return tensor


def refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


# --- health, metadata, configuration, index: what the HTTP routes answer -------------------------

def test_health_as_the_http_routes(make_app, serve):
    app, _ = make_app()
    with triton_client(app) as client:
        assert client.is_server_live()
        assert not client.is_server_ready()  # no worker has loaded the default model yet
        assert not client.is_model_ready("mnist")
        serve()
        assert client.is_server_ready()
        assert client.is_model_ready("mnist")
        assert client.is_model_ready("mnist", "3")
        assert not client.is_model_ready("mnist", "4")
        assert not client.is_model_ready("fashion")


def test_metadata_config_and_index_are_the_http_routes_answers(stand_in, triton, serve):
    http = stand_in[0].test_client()
    assert triton.get_server_metadata(as_json=True) == http.get("/v2").get_json()
    metadata = json_format.ParseDict(http.get("/v2/models/mnist").get_json(), service_pb2.ModelMetadataResponse())
    assert triton.get_model_metadata("mnist") == metadata
    assert triton.get_model_metadata("mnist", "3") == metadata
    config = json_format.ParseDict(http.get("/v2/models/mnist/config").get_json(), model_config_pb2.ModelConfig())
    assert triton.get_model_config("mnist").config == config
    assert triton.get_model_config("mnist").config.max_batch_size == 64
    assert triton.get_model_config("mnist").config.input[0].dims == [784]
    serve(spec=EVERY_TYPE, version=1, name="host:2")  # no heartbeat of host:2 later: still live
    index = http.post("/v2/repository/index", json={}).get_json()
    assert triton.get_model_repository_index() == json_format.ParseDict({"models": index},
                                                                        service_pb2.RepositoryIndexResponse())
    assert [model["name"] for model in index] == ["every", "mnist"]


def test_an_unknown_model_or_version_is_not_found_with_the_http_message(stand_in, triton):
    http = stand_in[0].test_client()
    for name, version, path in (("fashion", "", "/v2/models/fashion"), ("mnist", "9", "/v2/models/mnist/versions/9")):
        with pytest.raises(InferenceServerException) as missing:
            triton.get_model_metadata(name, version)
        assert missing.value.status() == "StatusCode.NOT_FOUND"
        assert missing.value.message() == http.get(path).get_json()["error"]
    with pytest.raises(InferenceServerException) as bad:
        triton.get_model_config("mnist", "latest")
    assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "version must be a number" in bad.value.message()


# --- inference -------------------------------------------------------------------------------------

@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
@pytest.mark.parametrize("shape", [(784,), (28, 28)], ids=["flat", "28x28"])
def test_infer_through_the_queue(stand_in, triton, datatype, shape):
    _, worker = stand_in
    images = digits(3).reshape(3, *shape).astype(np.float32 if datatype == "FP32" else np.uint8)
    result = triton.infer("mnist", [infer_input(images, datatype)], request_id="r-1")
    assert result.as_numpy("labels").tolist() == stand_in_labels(images)
    assert result.as_numpy("labels").dtype == np.int64
    np.testing.assert_array_equal(result.as_numpy("probabilities"), np.full((3, 10), 0.1, np.float32))
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("mnist", "3", "r-1")
    [job] = worker.sent  # one job, through the queue
    assert job.inputs["inputdata"].dtype == images.dtype
    np.testing.assert_array_equal(job.inputs["inputdata"], images.reshape(3, 784))


def test_only_the_outputs_asked_for_in_the_order_asked(triton):
    images = digits(2, random_seed=2).astype(np.float32)
    outputs = [triton_grpc.InferRequestedOutput("probabilities"), triton_grpc.InferRequestedOutput("labels")]
    response = triton.infer("mnist", [infer_input(images.reshape(2, 784))], outputs=outputs).get_response()
    assert [output.name for output in response.outputs] == ["probabilities", "labels"]
    result = triton.infer("mnist", [infer_input(images.reshape(2, 784))],
                          outputs=[triton_grpc.InferRequestedOutput("labels")])
    assert [output.name for output in result.get_response().outputs] == ["labels"]
    assert result.as_numpy("probabilities") is None


def test_a_version_is_addressed_by_number(stand_in, triton):
    images = digits(1).reshape(1, 784).astype(np.float32)
    assert triton.infer("mnist", [infer_input(images)], model_version="3").get_response().model_version == "3"
    assert stand_in[1].sent[0].version == 3
    with pytest.raises(InferenceServerException) as missing:
        triton.infer("mnist", [infer_input(images)], model_version="8")
    assert (missing.value.status(), missing.value.message()) == (
        "StatusCode.NOT_FOUND", "model 'mnist' version 8 is not served; served: 3")


def every_type_values(rows: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    values = {}
    for name in DATATYPES:
        if name == "bool":
            values[name] = rng.integers(0, 2, (rows, 3)).astype(bool)
        elif name == "string":
            # Text, an empty string and bytes that are no UTF-8: BYTES carries any bytes.
            values[name] = np.array([[b"seven", b"", b"\xff\xfe"]] * rows, dtype=object)
        elif name.startswith(("int", "uint")):
            info = np.iinfo(name)
            values[name] = np.array([[info.min, 0, info.max]] * rows, dtype=name)
        else:
            values[name] = np.array([[-1.5, 0.0, np.finfo(name).max]] * rows, dtype=name)
    return values


@pytest.fixture
def every_type(make_app, serve):
    """The stand-in serving EVERY_TYPE, each output its input."""
    serve(spec=EVERY_TYPE, version=1)
    app, worker = make_app()
    worker.outputs = {f"out_{name}": (lambda job, name=name: as_stored(job.inputs[f"in_{name}"])) for name in DATATYPES}
    return app, worker


def as_stored(array: np.ndarray) -> list:
    """An output as a worker stores it: JSON lists, strings' bytes as ``{"b64": ...}``."""
    if array.dtype.kind != "O":
        return array.tolist()
    return [[{"b64": base64.b64encode(value).decode()} for value in row] for row in array]


def test_every_datatype_as_raw_contents_both_ways(every_type):
    app, worker = every_type
    values = every_type_values(2)
    with triton_client(app) as client:
        result = client.infer("every", [infer_input(array, DATATYPES[name], f"in_{name}")
                                        for name, array in values.items()])
    for name, array in values.items():
        [job] = worker.sent
        assert job.inputs[f"in_{name}"].dtype == array.dtype, name
        np.testing.assert_array_equal(job.inputs[f"in_{name}"], array, err_msg=name)
        answered = result.as_numpy(f"out_{name}")
        assert answered.shape == (2, 3), name
        np.testing.assert_array_equal(answered, array, err_msg=name)
        assert result.get_output(f"out_{name}").datatype == DATATYPES[name]


#: Each datatype's typed contents field, for the types that have one (FP16 has none, as in Triton).
TYPED = {"BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
         "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
         "INT64": "int64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def typed_input(name: str, datatype: str, array: np.ndarray) -> service_pb2.ModelInferRequest.InferInputTensor:
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=list(array.shape))
    getattr(tensor.contents, TYPED[datatype]).extend(array.ravel().tolist())
    return tensor


def test_every_datatype_but_fp16_as_typed_contents(every_type, serve):
    """Typed contents, read as the HTTP route's JSON ``data``, on a model of every type but FP16, which
    has no contents field (raw only, as in Triton; a request's inputs are all raw or all typed)."""
    spec = ModelSpec("typed", 1, "serving_default",
                     tuple(t for t in EVERY_TYPE.inputs if t.dtype != "float16"),
                     tuple(t for t in EVERY_TYPE.outputs if t.dtype != "float16"))
    serve(spec=spec, version=1, name="host:3")
    app, worker = every_type
    values = {name: array for name, array in every_type_values(2).items() if name != "float16"}
    request = service_pb2.ModelInferRequest(model_name="typed", inputs=[
        typed_input(f"in_{name}", DATATYPES[name], array) for name, array in values.items()])
    with served_over_grpc(app) as address, grpc.insecure_channel(address) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    result = triton_grpc.InferResult(response)
    [job] = worker.sent
    for name, array in values.items():
        assert job.inputs[f"in_{name}"].dtype == array.dtype, name
        np.testing.assert_array_equal(job.inputs[f"in_{name}"], array, err_msg=name)
        np.testing.assert_array_equal(result.as_numpy(f"out_{name}"), array, err_msg=name)


def test_async_infer_with_a_callback(triton):
    images = digits(2, random_seed=7).reshape(2, 784).astype(np.float32)
    done: list = []
    triton.async_infer("mnist", [infer_input(images)], callback=lambda result, error: done.append((result, error)))
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    [(result, error)] = done
    assert error is None
    assert result.as_numpy("labels").tolist() == stand_in_labels(images)


def test_the_asyncio_client(stand_in):
    import asyncio

    images = digits(2, random_seed=8).reshape(2, 784).astype(np.float32)

    async def call(address: str):
        async with triton_aio.InferenceServerClient(address) as client:
            assert await client.is_server_live()
            result = await client.infer("mnist", [infer_input(images)])
            return result.as_numpy("labels").tolist()

    with served_over_grpc(stand_in[0]) as address:
        assert asyncio.run(call(address)) == stand_in_labels(images)


def test_a_stream_answers_each_request_in_turn_and_its_refusals_in_the_stream(triton):
    answers: queue.Queue = queue.Queue()
    triton.start_stream(callback=lambda result, error: answers.put((result, error)))
    images = digits(2, random_seed=9).reshape(2, 784).astype(np.float32)
    wrong = triton_grpc.InferInput("inputdata", [1, 784], "INT32")
    wrong.set_data_from_numpy(np.zeros((1, 784), np.int32))
    triton.async_stream_infer("mnist", [infer_input(images)], request_id="s-1")
    triton.async_stream_infer("mnist", [wrong], request_id="s-2")
    triton.async_stream_infer("mnist", [infer_input(images[:1])], request_id="s-3")
    got = [answers.get(timeout=10) for _ in range(3)]
    triton.stop_stream()
    (first, none), (_, refused), (third, also_none) = got
    assert none is None and also_none is None
    assert first.as_numpy("labels").tolist() == stand_in_labels(images)
    assert first.get_response().id == "s-1" and third.get_response().id == "s-3"
    assert third.as_numpy("labels").tolist() == stand_in_labels(images[:1])
    assert "datatype 'INT32'; the model takes FP32 [-1, 784]" in refused.message()


# --- scheduling: priority and deadline ---------------------------------------------------------------

@pytest.mark.parametrize("priority, queued", [(0, "interactive"), (1, "interactive"), (2, "bulk")])
def test_priority_from_the_request_parameters(stand_in, triton, priority, queued):
    triton.infer("mnist", [infer_input(digits(1).reshape(1, 784).astype(np.float32))], priority=priority)
    assert stand_in[1].sent[0].priority == queued


def test_the_clients_deadline_is_the_jobs(make_app, serve):
    serve()
    app, worker = make_app(sync_timeout_s=30)
    worker.answer = False  # nobody answers: the client gives up at its deadline
    with triton_client(app) as client:
        started = time.monotonic()
        with pytest.raises(InferenceServerException) as late:
            client.infer("mnist", [infer_input(digits(1).reshape(1, 784).astype(np.float32))], client_timeout=0.5)
        assert time.monotonic() - started < 5
    assert late.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    [job] = worker.sent
    # Queued with the call's deadline, so that a worker drops it once nobody waits for it.
    assert job.deadline is not None and 0 < job.deadline - job.queued_at <= 0.5


def test_tritons_timeout_parameter_is_the_jobs_deadline_too(make_app, serve):
    serve()
    app, worker = make_app(sync_timeout_s=30)
    worker.answer = False
    with triton_client(app) as client, pytest.raises(InferenceServerException) as late:
        client.infer("mnist", [infer_input(digits(1).reshape(1, 784).astype(np.float32))], timeout=200_000)
    assert late.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert late.value.message().startswith("no answer within 0.2 s")
    [job] = worker.sent
    assert 0 < job.deadline - job.queued_at <= 0.2 + 1e-6


def test_a_full_queue_is_unavailable_with_retry_info(make_app, serve, fake_redis):
    serve()
    app, worker = make_app(max_interactive_queue_depth=2, max_images_per_request=2, sync_timeout_s=0.2)
    worker.answer = False
    # The workers drain half an image a second: 2 images more than fit are 4 s away, not the fallback.
    fake_redis.set(keys.drain_rate("mnist"), orjson.dumps({"images_per_s": 0.5, "measured_at": 0}))
    http = app.test_client()
    images = digits(2).reshape(2, 784).astype(np.float32)
    with served_over_grpc(app) as address, grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        tensor = service_pb2.ModelInferRequest.InferInputTensor(name="inputdata", datatype="FP32", shape=[2, 784])
        request = service_pb2.ModelInferRequest(model_name="mnist", inputs=[tensor],
                                                raw_input_contents=[images.tobytes()])
        code, _ = refusal(lambda: stub.ModelInfer(request))  # admitted, never answered: the queue holds 2
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.RpcError) as full:
            stub.ModelInfer(request)
    error = full.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    expected = http.post("/v2/models/mnist/infer", json={"inputs": [
        {"name": "inputdata", "datatype": "FP32", "shape": [2, 784], "data": images.ravel().tolist()}]})
    assert expected.status_code == 503
    assert error.details() == expected.get_json()["error"]
    assert ("retry-after", expected.headers["Retry-After"]) in error.trailing_metadata()
    details = {detail.type_url.split("/")[-1]: detail for detail in rpc_status.from_call(error).details}
    retry, info = error_details_pb2.RetryInfo(), error_details_pb2.ErrorInfo()
    details["google.rpc.RetryInfo"].Unpack(retry)
    details["google.rpc.ErrorInfo"].Unpack(info)
    assert expected.headers["Retry-After"] != "1"
    assert retry.retry_delay.seconds == int(expected.headers["Retry-After"])
    assert (info.reason, info.domain, dict(info.metadata)) == ("QUEUE_FULL", "inferq",
                                                               {"priority": "interactive", "model": "mnist"})


def test_an_unreachable_broker_is_unavailable(make_app, serve, unreachable_redis):
    app, _ = make_app(redis_client=unreachable_redis)
    with triton_client(app) as client:
        assert client.is_server_live()
        assert not client.is_server_ready()
        with pytest.raises(InferenceServerException) as down:
            client.infer("mnist", [infer_input(digits(1).reshape(1, 784).astype(np.float32))])
    assert (down.value.status(), down.value.message()) == (
        "StatusCode.UNAVAILABLE", "the broker (Redis) does not answer; try again shortly")


# --- refusals: what the HTTP route refuses, refused with its message ----------------------------------

BLACK = np.zeros((1, 784), np.float32)


def raw_request(*tensors: tuple[str, str, list[int], bytes], **fields) -> service_pb2.ModelInferRequest:
    return service_pb2.ModelInferRequest(
        model_name="mnist", inputs=[service_pb2.ModelInferRequest.InferInputTensor(name=name, datatype=datatype,
                                                                                    shape=shape)
                                    for name, datatype, shape, _ in tensors],
        raw_input_contents=[data for *_, data in tensors], **fields)


def typed_request(datatype: str, shape: list[int], field: str, values: list, **fields) -> service_pb2.ModelInferRequest:
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name="inputdata", datatype=datatype, shape=shape)
    getattr(tensor.contents, field).extend(values)
    return service_pb2.ModelInferRequest(model_name="mnist", inputs=[tensor], **fields)


def parameters(**values) -> dict:
    made = {}
    for name, value in values.items():
        parameter = service_pb2.InferParameter()
        setattr(parameter, {str: "string_param", int: "int64_param", bool: "bool_param"}[type(value)], value)
        made[name] = parameter
    return made


GOOD = ("inputdata", "FP32", [1, 784], BLACK.tobytes())
CASES = {
    "no inputs": (raw_request(), "no input 'inputdata' (FP32 [-1, 784]) in the request"),
    "unknown input": (raw_request(("x", "FP32", [1, 784], BLACK.tobytes())), "no input 'x'"),
    "two inputs": (raw_request(GOOD, GOOD), "input 'inputdata' is sent twice"),
    "datatype": (raw_request(("inputdata", "INT32", [1, 784], BLACK.tobytes())),
                 "datatype 'INT32'; the model takes FP32 [-1, 784] (or a narrower number type that converts"),
    "shape not sizes": (raw_request(("inputdata", "FP32", [-1, 784], BLACK.tobytes())), "'shape' must be a list"),
    "shape not an image": (raw_request(("inputdata", "FP32", [1, 10], BLACK[:, :10].tobytes())),
                           "shape [1, 10]; the model takes FP32 [-1, 784]"),
    "too many": (raw_request(("inputdata", "FP32", [5, 784], np.zeros((5, 784), np.float32).tobytes())),
                 "5 items, more than the 4 allowed"),
    "no rows": (raw_request(("inputdata", "FP32", [0, 784], b"")), "no items (shape [0, 784])"),
    "raw too short": (raw_request(("inputdata", "FP32", [1, 784], BLACK.tobytes()[:-4])), "is 3136 bytes"),
    "raw of another type's size": (raw_request(("inputdata", "UINT8", [1, 784], BLACK.tobytes())),
                                   "shape [1, 784] of UINT8 is 784 bytes of binary data (1 a value); "
                                   "binary_data_size says 3136"),
    "raw contents not one an input": (
        service_pb2.ModelInferRequest(model_name="mnist", inputs=[raw_request(GOOD).inputs[0]],
                                      raw_input_contents=[BLACK.tobytes()] * 2),
        "2 raw_input_contents for 1 inputs"),
    "raw and typed": (typed_request("FP32", [1, 784], "fp32_contents", [0.0] * 784,
                                    raw_input_contents=[BLACK.tobytes()]), "both 'contents' and raw_input_contents"),
    "typed in another type's field": (typed_request("FP32", [1, 784], "int_contents", [0] * 784),
                                      "FP32 values in 'int_contents'; its values go in 'fp32_contents'"),
    "typed shape and data disagree": (typed_request("FP32", [2, 784], "fp32_contents", [0.0] * 784),
                                      "holds 1568 values, its 'data' 784"),
    "FP16 typed": (typed_request("FP16", [1, 784], "fp32_contents", [0.0] * 784),
                   "FP16 values in 'fp32_contents'; it has no typed contents: send raw_input_contents"),
    "FP16 without raw contents": (typed_request("FP16", [1, 784], "fp32_contents", []),
                                  "input 'inputdata': FP16 has no typed contents: send raw_input_contents"),
    "typed no data": (typed_request("FP32", [1, 784], "fp32_contents", []), "holds 784 values, its 'data' 0"),
    "UINT8 too bright": (typed_request("UINT8", [1, 784], "uint_contents", [300] + [0] * 783),
                         "300 at [0] does not fit UINT8 (0..255)"),
    "unknown output": (raw_request(GOOD, outputs=[service_pb2.ModelInferRequest.InferRequestedOutputTensor(
        name="logits")]), "no output 'logits'"),
    "output asked twice": (raw_request(GOOD, outputs=[service_pb2.ModelInferRequest.InferRequestedOutputTensor(
        name="labels")] * 2), "output 'labels' is asked for twice"),
    "bad priority": (raw_request(GOOD, parameters=parameters(priority="urgent")), "priority must be one of"),
    "bad timeout": (raw_request(GOOD, parameters=parameters(timeout=-5)),
                    "parameters.timeout must be a positive number, got -5"),
    "version not a number": (raw_request(GOOD, model_version="v1"), "version must be a number"),
}


@pytest.mark.parametrize("request_, message", CASES.values(), ids=CASES.keys())
def test_a_malformed_request_is_invalid_argument_and_queues_nothing(stand_in, stub, request_, message):
    code, details = refusal(lambda: stub.ModelInfer(request_))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert message in details
    assert stand_in[1].sent == []


def test_a_well_formed_request_passes_the_same_checks(stand_in, stub):
    """The cases above fail for what they change, not for what they share."""
    assert stub.ModelInfer(raw_request(GOOD)).model_version == "3"
    assert stub.ModelInfer(typed_request("FP32", [1, 784], "fp32_contents", [0.0] * 784)).model_version == "3"
    assert stub.ModelInfer(typed_request("UINT8", [1, 784], "uint_contents", [255] * 784)).model_version == "3"
    assert stub.ModelInfer(raw_request(GOOD, parameters=parameters(priority="bulk", timeout=5_000_000)))
    assert len(stand_in[1].sent) == 4


def test_the_messages_are_the_http_routes(stand_in, stub):
    http = stand_in[0].test_client()
    body = {"inputs": [{"name": "inputdata", "datatype": "UINT8", "shape": [1, 784], "data": [300] + [0] * 783}]}
    expected = http.post("/v2/models/mnist/infer", json=body).get_json()["error"]
    assert refusal(lambda: stub.ModelInfer(typed_request("UINT8", [1, 784], "uint_contents", [300] + [0] * 783))) \
        == (grpc.StatusCode.INVALID_ARGUMENT, expected)


#: Each gRPC request beside the HTTP v2 body that is refused for the same reason (tests/protocols/
#: test_malformed.py's cases, where gRPC can send them): the message must be the HTTP route's.
ZEROS = [0.0] * 784
AS_HTTP = {
    "no inputs": (raw_request(), {"inputs": []}),
    "unknown input": (raw_request(("x", "FP32", [1, 784], BLACK.tobytes())),
                      {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 784], "data": ZEROS}]}),
    "two inputs": (raw_request(GOOD, GOOD), {"inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [1, 784],
                                                          "data": ZEROS}] * 2}),
    "datatype": (typed_request("INT32", [1, 784], "int_contents", [0] * 784),
                 {"inputs": [{"name": "inputdata", "datatype": "INT32", "shape": [1, 784], "data": [0] * 784}]}),
    "shape not an image": (typed_request("FP32", [1, 10], "fp32_contents", [0.0] * 10),
                           {"inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [1, 10],
                                        "data": [0.0] * 10}]}),
    "shape and data disagree": (typed_request("FP32", [2, 784], "fp32_contents", ZEROS),
                                {"inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [2, 784],
                                             "data": ZEROS}]}),
    "no rows": (typed_request("FP32", [0, 784], "fp32_contents", []),
                {"inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [0, 784], "data": []}]}),
    "too many": (typed_request("FP32", [5, 784], "fp32_contents", ZEROS * 5),
                 {"inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [5, 784], "data": ZEROS * 5}]}),
    "UINT8 too bright": (typed_request("UINT8", [1, 784], "uint_contents", [300] + [0] * 783),
                         {"inputs": [{"name": "inputdata", "datatype": "UINT8", "shape": [1, 784],
                                      "data": [300] + [0] * 783}]}),
    "unknown output": (raw_request(GOOD, outputs=[service_pb2.ModelInferRequest.InferRequestedOutputTensor(
        name="logits")]), {"inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [1, 784], "data": ZEROS}],
                           "outputs": [{"name": "logits"}]}),
    "bad priority": (raw_request(GOOD, parameters=parameters(priority="urgent")),
                     {"inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [1, 784], "data": ZEROS}],
                      "parameters": {"priority": "urgent"}}),
    "priority not a level": (raw_request(GOOD, parameters=parameters(priority=True)),
                             {"inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [1, 784],
                                          "data": ZEROS}], "parameters": {"priority": True}}),
    "bad timeout": (raw_request(GOOD, parameters=parameters(timeout=-5)),
                    {"inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [1, 784], "data": ZEROS}],
                     "parameters": {"timeout": -5}}),
    "timeout not a number": (raw_request(GOOD, parameters=parameters(timeout="soon")),
                             {"inputs": [{"name": "inputdata", "datatype": "FP32", "shape": [1, 784],
                                          "data": ZEROS}], "parameters": {"timeout": "soon"}}),
}


@pytest.mark.parametrize("request_, body", AS_HTTP.values(), ids=AS_HTTP.keys())
def test_each_refusal_is_the_http_routes_word_for_word(stand_in, stub, request_, body):
    http = stand_in[0].test_client().post("/v2/models/mnist/infer", json=body)
    assert http.status_code == 400, http.get_json()
    assert refusal(lambda: stub.ModelInfer(request_)) == (grpc.StatusCode.INVALID_ARGUMENT, http.get_json()["error"])
    assert stand_in[1].sent == []


def test_an_unknown_model_is_not_found_with_the_http_message(stand_in, stub):
    request = raw_request(GOOD)
    request.model_name = "fashion"
    expected = stand_in[0].test_client().post("/v2/models/fashion/infer", json={"inputs": []})
    assert expected.status_code == 404
    assert refusal(lambda: stub.ModelInfer(request)) == (grpc.StatusCode.NOT_FOUND, expected.get_json()["error"])


#: Strings of any length in, as a tokenizer's input: a BYTES shape [N, anything] fits it.
TOKENS = ModelSpec("tokens", 1, "serving_default", (TensorSpec("tokens", "string", (ANY, ANY), "tokens:0"),),
                   (TensorSpec("score", "float32", (ANY,), "score:0"),))


@pytest.mark.parametrize("shape", [[1, 10**13], [2, 2**62]])
@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
def test_a_bytes_shape_far_past_its_strings_is_refused_before_anything_is_allocated(make_app, serve, shape, typed):
    """As over HTTP (test_malformed.py): the declared shape is checked against the strings sent, not
    allocated first (once a MemoryError, a 500)."""
    serve(spec=TOKENS, version=1)
    app, worker = make_app()
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name="tokens", datatype="BYTES", shape=shape)
    request = service_pb2.ModelInferRequest(model_name="tokens", inputs=[tensor])
    if typed:
        request.inputs[0].contents.bytes_contents.append(b"x")
    else:
        request.raw_input_contents.append(struct.pack("<I", 1) + b"x")
    with served_over_grpc(app) as address, grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        code, details = refusal(lambda: stub.ModelInfer(request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert f"BYTES binary data holds 1 strings (each a 4-byte little-endian length, then its bytes); its " \
               f"shape needs {shape[0] * shape[1]}" in details
        assert worker.sent == []
        del request.inputs[0].shape[:]
        request.inputs[0].shape.extend([1, 1])
        assert stub.ModelInfer(request).model_name == "tokens"


def test_any_float_reaches_the_model_as_sent(stand_in, stub):
    """NaN, infinities, fractions and numbers past a pixel's range are FP32 values like any other,
    as over HTTP: the model, not the protocol, says what they mean."""
    odd = np.array([256.0, -0.5, 12.4, np.nan, np.inf, -np.inf] + [0.0] * 778, np.float32).reshape(1, 784)
    stub.ModelInfer(raw_request(("inputdata", "FP32", [1, 784], odd.tobytes())))
    stub.ModelInfer(typed_request("FP32", [1, 784], "fp32_contents", odd.ravel().tolist()))
    for job in stand_in[1].sent:
        np.testing.assert_array_equal(job.inputs["inputdata"], odd)
    assert len(stand_in[1].sent) == 2


def test_a_message_that_is_no_request_is_refused_as_the_clients_error(stand_in):
    """Bytes that do not parse as a ModelInferRequest: INVALID_ARGUMENT, as HTTP's 400 for a body that
    is no JSON (grpcio by itself answers INTERNAL), for one call and for a stream's request alike."""
    garbage = b"\xff\xff\xff\xff not protobuf"
    with served_over_grpc(stand_in[0]) as address, grpc.insecure_channel(address) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        code, details = refusal(lambda: infer(garbage))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("the request does not parse: Error parsing message")
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        code, details = refusal(lambda: list(stream(iter([garbage]))))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("the request does not parse")
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")  # every service alike
        assert refusal(lambda: predict(garbage))[0] == grpc.StatusCode.INVALID_ARGUMENT
        assert stand_in[1].sent == []
        # And one that parses is answered, on the same channel.
        answered = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(
            raw_request(GOOD).SerializeToString())
    assert service_pb2.ModelInferResponse.FromString(answered).model_name == "mnist"


def test_a_message_past_max_request_bytes_is_resource_exhausted(make_app, serve):
    serve()
    app, worker = make_app(max_request_bytes=64 * 1024)
    big = np.zeros((30, 784), np.float32)  # 94 KB
    with served_over_grpc(app) as address, grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        code, _ = refusal(lambda: stub.ModelInfer(raw_request(("inputdata", "FP32", [30, 784], big.tobytes()))))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.ModelInfer(raw_request(GOOD)).model_name == "mnist"  # the server goes on
    assert len(worker.sent) == 1


# --- the API key, health checking -----------------------------------------------------------------

def test_the_api_key_as_metadata(make_app, serve):
    serve()
    app, _ = make_app(api_key="s3cret")
    images = digits(1).reshape(1, 784).astype(np.float32)
    with triton_client(app) as client:
        for call in (lambda: client.is_server_live(), lambda: client.infer("mnist", [infer_input(images)]),
                     lambda: client.infer("mnist", [infer_input(images)], headers={"authorization": "Bearer guess"})):
            with pytest.raises(InferenceServerException) as refused:
                call()
            assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
            assert refused.value.message() == "missing or wrong API key: send 'authorization: Bearer <key>' metadata"
        key = {"authorization": "Bearer s3cret"}
        assert client.is_server_live(headers=key)
        assert client.infer("mnist", [infer_input(images)], headers=key).as_numpy("labels").shape == (1,)


def test_a_tenants_key_as_metadata_queues_its_work_and_its_quota_refuses_with_retry_info(make_app, serve,
                                                                                         fake_redis, tmp_path):
    import json

    from inferq.tenants import key_digest
    serve()
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [
        {"name": "vision", "max_queued_items": 1, "keys": ["sha256:" + key_digest("k-vision").hex()]}]}))
    app, worker = make_app(tenants_file=str(path))
    images = digits(1).reshape(1, 784).astype(np.float32)
    key = {"authorization": "Bearer k-vision"}
    with triton_client(app) as client:
        assert client.infer("mnist", [infer_input(images)], headers=key).as_numpy("labels").shape == (1,)
        [record] = fake_redis.keys(keys.job("*"))
        assert fake_redis.hget(record, "tenant") == b"vision"
        with pytest.raises(InferenceServerException) as refused:
            client.infer("mnist", [infer_input(np.concatenate([images, images]))], headers=key)
        assert refused.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert "tenant 'vision' is over its quota" in refused.value.message()
        with pytest.raises(InferenceServerException) as unknown:
            client.infer("mnist", [infer_input(images)], headers={"authorization": "Bearer k-other"})
        assert unknown.value.status() == "StatusCode.UNAUTHENTICATED"


def health_of(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service)).status


def test_health_checking_needs_no_key_and_says_serving(make_app, serve):
    serve()
    app, _ = make_app(api_key="s3cret")
    with served_over_grpc(app) as address:
        assert health_of(address, "") == health_pb2.HealthCheckResponse.SERVING
        for service in ("inference.GRPCInferenceService", "tensorflow.serving.PredictionService",
                        "tensorflow.serving.ModelService"):
            assert health_of(address, service) == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as unknown:
            health_of(address, "tensorflow.serving.SessionService")  # not served
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_not_serving_inference_while_redis_does_not_answer(make_app, unreachable_redis):
    app, _ = make_app(redis_client=unreachable_redis)
    with served_over_grpc(app) as address:
        assert health_of(address, "") == health_pb2.HealthCheckResponse.SERVING
        for service in ("inference.GRPCInferenceService", "tensorflow.serving.PredictionService"):
            assert health_of(address, service) == health_pb2.HealthCheckResponse.NOT_SERVING, service


# --- TLS -------------------------------------------------------------------------------------------

@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for localhost and 127.0.0.1, and its key (openssl, Debian's)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_tls_only_when_a_certificate_is_set(make_app, serve, certificate):
    serve()
    cert, key = certificate
    app, _ = make_app()
    settings = dataclasses.replace(app.extensions["inferq"].settings, grpc_tls_cert_file=str(cert),
                                   grpc_tls_key_file=str(key))
    images = digits(1).reshape(1, 784).astype(np.float32)
    with served_over_grpc(app, settings) as address:
        secure = triton_grpc.InferenceServerClient(address, ssl=True, root_certificates=str(cert))
        assert secure.infer("mnist", [infer_input(images)]).as_numpy("labels").tolist() == stand_in_labels(images)
        secure.close()
        plain = triton_grpc.InferenceServerClient(address)
        with pytest.raises(InferenceServerException) as refused:
            plain.is_server_live(client_timeout=2)
        assert refused.value.status() in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
        plain.close()


def test_an_unexpected_error_is_internal_and_tells_nothing(stand_in, triton, monkeypatch):
    from api.kserve import open_inference

    def broken(name, version=None):
        raise RuntimeError("failed reading /work/models/mnist/secret")

    monkeypatch.setattr(open_inference, "model_metadata", broken)
    with pytest.raises(InferenceServerException) as failed:
        triton.get_model_metadata("mnist")
    assert (failed.value.status(), failed.value.message()) == ("StatusCode.INTERNAL",
                                                               "internal error; the server log has the details")
    assert triton.is_server_live()  # and the server goes on
