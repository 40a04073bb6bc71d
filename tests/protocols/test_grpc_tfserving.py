"""TF Serving's gRPC API on the stand-in worker, with TF Serving's own client stubs
(tensorflow-serving-api's ``PredictionServiceStub`` and ``ModelServiceStub``) and TensorFlow's
``make_tensor_proto`` / ``make_ndarray``, as its clients build and read tensors: Predict, Classify,
GetModelMetadata and GetModelStatus, and every refusal of the REST routes, with their messages, as
status codes."""

from __future__ import annotations

import base64
import contextlib

import grpc
import numpy as np
import orjson
import pytest
import tensorflow as tf
from google.protobuf import json_format, wrappers_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from inferq import keys
from tests.protocols.conftest import served_over_grpc
from tests.protocols.helpers import digits, stand_in_labels
from tests.protocols.test_grpc import DATATYPES, EVERY_TYPE, every_type, every_type_values  # noqa: F401 (a fixture)
from tests.protocols.test_repository import f32, iris_scores
from tests.support.specs import IRIS_LABELS, pair_spec, tabular_spec, text_spec

PREDICT = "/v1/models/mnist:predict"


@contextlib.contextmanager
def stubs(app):
    """TF Serving's two stubs, on the gRPC front end of ``app``."""
    with served_over_grpc(app) as address, grpc.insecure_channel(address) as channel:
        yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
               model_service_pb2_grpc.ModelServiceStub(channel))


@pytest.fixture
def stand_in(make_app, serve):
    serve()
    return make_app(max_images_per_request=4)


@pytest.fixture
def stub(stand_in):
    with stubs(stand_in[0]) as (prediction, _):
        yield prediction


def spec(name: str = "mnist", version: int | None = None, signature: str = "") -> model_pb2.ModelSpec:
    made = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        made.version.CopyFrom(wrappers_pb2.Int64Value(value=version))
    return made


def predict_request(inputs: dict, *, name: str = "mnist", version: int | None = None, signature: str = "",
                    output_filter: tuple[str, ...] = ()) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=spec(name, version, signature), output_filter=output_filter)
    for key, value in inputs.items():
        proto = value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        request.inputs[key].CopyFrom(proto)
    return request


def refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


# --- Predict -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.uint8], ids=["float32", "uint8"])
@pytest.mark.parametrize("shape", [(784,), (28, 28)], ids=["flat", "28x28"])
def test_predict_through_the_queue(stand_in, stub, dtype, shape):
    _, worker = stand_in
    images = digits(3).reshape(3, *shape).astype(dtype)
    response = stub.Predict(predict_request({"inputdata": images}), timeout=10)
    assert tf.make_ndarray(response.outputs["labels"]).tolist() == stand_in_labels(images)
    assert tf.make_ndarray(response.outputs["labels"]).dtype == np.int64
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["probabilities"]),
                                  np.full((3, 10), 0.1, np.float32))
    assert (response.model_spec.name, response.model_spec.version.value, response.model_spec.signature_name) == (
        "mnist", 3, "serving_default")
    [job] = worker.sent  # one job, through the queue, of the type sent (uint8 kept so: the worker casts)
    assert job.inputs["inputdata"].dtype == dtype
    np.testing.assert_array_equal(job.inputs["inputdata"], images.reshape(3, 784))


def test_typed_values_as_tensorflow_reads_them(stand_in, stub):
    """``float_val`` and ``int_val`` (UINT8), as hand-built requests send them, not tensor_content."""
    images = digits(2, random_seed=4).reshape(2, 784)
    floats = tf.make_tensor_proto(images.astype(np.float32))
    floats.ClearField("tensor_content")
    floats.float_val.extend(images.ravel().astype(float).tolist())
    pixels = tensor_pb2.TensorProto(dtype=tf.uint8.as_datatype_enum, tensor_shape=floats.tensor_shape,
                                    int_val=images.ravel().tolist())
    for tensor in (floats, pixels):
        response = stub.Predict(predict_request({"inputdata": tensor}), timeout=10)
        assert tf.make_ndarray(response.outputs["labels"]).tolist() == stand_in_labels(images)
    assert [job.inputs["inputdata"].dtype for job in stand_in[1].sent] == [np.float32, np.uint8]


def test_every_dtype_both_ways_as_tensor_content_and_typed_values(every_type):  # noqa: F811 (the fixture)
    app, worker = every_type
    values = every_type_values(2)
    with stubs(app) as (prediction, _):
        as_content = prediction.Predict(predict_request(
            {f"in_{name}": array for name, array in values.items()}, name="every"), timeout=10)
        typed = predict_request({f"in_{name}": array for name, array in values.items()}, name="every")
        for name, array in values.items():
            tensor = typed.inputs[f"in_{name}"]
            if tensor.tensor_content:  # as its typed field instead (half_val: float16's bits)
                tensor.ClearField("tensor_content")
                flat = array.ravel().view(np.uint16) if name == "float16" else array.ravel()
                getattr(tensor, FIELDS[name]).extend(flat.tolist())
        as_typed = prediction.Predict(typed, timeout=10)
    assert len(worker.sent) == 2
    for response, job in zip((as_content, as_typed), worker.sent, strict=True):
        for name, array in values.items():
            assert job.inputs[f"in_{name}"].dtype == array.dtype, name
            np.testing.assert_array_equal(job.inputs[f"in_{name}"], array, err_msg=name)
            answered = tf.make_ndarray(response.outputs[f"out_{name}"])
            assert answered.dtype == array.dtype, name
            np.testing.assert_array_equal(answered, array, err_msg=name)


#: Each dtype's typed field (tensor.proto), as TensorFlow reads them.
FIELDS = {"bool": "bool_val", "uint8": "int_val", "uint16": "int_val", "uint32": "uint32_val",
          "uint64": "uint64_val", "int8": "int_val", "int16": "int_val", "int32": "int_val", "int64": "int64_val",
          "float16": "half_val", "float32": "float_val", "float64": "double_val", "string": "string_val"}


def test_output_filter_answers_only_the_outputs_named(stub):
    request = predict_request({"inputdata": digits(2).reshape(2, 784).astype(np.float32)}, output_filter=("labels",))
    assert list(stub.Predict(request, timeout=10).outputs) == ["labels"]


def test_a_version_is_addressed_by_number(stand_in, stub):
    images = digits(1).reshape(1, 784).astype(np.float32)
    assert stub.Predict(predict_request({"inputdata": images}, version=3), timeout=10).model_spec.version.value == 3
    assert stand_in[1].sent[0].version == 3


# --- Predict's refusals: the REST route's, with its messages ------------------------------------------------

BLACK = np.zeros((1, 784), np.float32)


def tensor(dtype=tf.float32, shape=(1, 784), **fields):
    # By hand, not tf.TensorShape: it refuses the bad shapes these requests send.
    made = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        unknown_rank=shape is None, dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in shape or ()]))
    for field, value in fields.items():
        if field == "tensor_content":
            made.tensor_content = value
        else:
            getattr(made, field).extend(value)
    return made


#: Each bad request, its code, and the REST request refused with the same message (None: none has it).
REFUSED_AS_REST = {
    "unknown model": (predict_request({"inputdata": BLACK}, name="fashion"), grpc.StatusCode.NOT_FOUND,
                      ("/v1/models/fashion:predict", {"inputs": {"inputdata": BLACK.tolist()}})),
    "unknown version": (predict_request({"inputdata": BLACK}, version=9), grpc.StatusCode.NOT_FOUND,
                        ("/v1/models/mnist/versions/9:predict", {"inputs": {"inputdata": BLACK.tolist()}})),
    "unknown signature": (predict_request({"inputdata": BLACK}, signature="classify"), grpc.StatusCode.INVALID_ARGUMENT,
                          (PREDICT, {"signature_name": "classify", "inputs": {"inputdata": BLACK.tolist()}})),
    "no inputs": (predict_request({}), grpc.StatusCode.INVALID_ARGUMENT, (PREDICT, {"inputs": {}})),
    "unknown input": (predict_request({"inputdata": BLACK, "x": BLACK}), grpc.StatusCode.INVALID_ARGUMENT,
                      (PREDICT, {"inputs": {"inputdata": BLACK.tolist(), "x": BLACK.tolist()}})),
    "shape": (predict_request({"inputdata": BLACK[:, :10]}), grpc.StatusCode.INVALID_ARGUMENT,
              (PREDICT, {"inputs": {"inputdata": BLACK[:, :10].tolist()}})),
    "a single value": (predict_request({"inputdata": np.float32(1)}), grpc.StatusCode.INVALID_ARGUMENT,
                       (PREDICT, {"inputs": {"inputdata": 1.0}})),
    "too many": (predict_request({"inputdata": np.zeros((5, 784), np.float32)}), grpc.StatusCode.INVALID_ARGUMENT,
                 (PREDICT, {"inputs": {"inputdata": np.zeros((5, 784)).tolist()}})),
    "no items": (predict_request({"inputdata": np.zeros((0, 784), np.float32)}), grpc.StatusCode.INVALID_ARGUMENT,
                 None),
}
#: Bad tensors, which JSON cannot send: refused, each with its own message.
REFUSED = {
    "another dtype": (predict_request({"inputdata": BLACK.astype(np.float64)}),
                      "input 'inputdata': DT_DOUBLE; the model takes DT_FLOAT [-1, 784] (or a narrower number type "
                      "that converts to it exactly)"),
    "strings for numbers": (predict_request({"inputdata": np.array([[b"x"] * 784], dtype=object)}),
                            "input 'inputdata': DT_STRING; the model takes DT_FLOAT"),
    "no items": (predict_request({"inputdata": np.zeros((0, 784), np.float32)}),
                 "input 'inputdata': no items (shape [0, 784]); the model takes float32 [-1, 784]"),
    "content too short": (predict_request({"inputdata": tensor(tensor_content=BLACK.tobytes()[:-4])}),
                          "input 'inputdata': shape [1, 784] of DT_FLOAT is 3136 bytes of 'tensor_content' "
                          "(4 a value), not 3132"),
    "typed values too few": (predict_request({"inputdata": tensor(float_val=[0.0] * 783)}),
                             "input 'inputdata': shape [1, 784] holds 784 values, its 'float_val' 783"),
    "one value for many": (predict_request({"inputdata": tensor(float_val=[0.0])}),
                           "shape [1, 784] holds 784 values, its 'float_val' 1"),
    "content and typed": (predict_request({"inputdata": tensor(tensor_content=BLACK.tobytes(), float_val=[0.0])}),
                          "input 'inputdata': both 'tensor_content' and 'float_val'; send the values one way"),
    "pixel too bright": (predict_request({"inputdata": tensor(tf.uint8, int_val=[300] + [0] * 783)}),
                         "input 'inputdata': 300 at [0, 0] does not fit uint8 (0..255)"),
    "negative size": (predict_request({"inputdata": tensor(shape=(-1, 784), float_val=[0.0] * 784)}),
                      "input 'inputdata': shape [-1, 784]; a tensor's sizes are 0 or more"),
    "unknown rank": (predict_request({"inputdata": tensor(shape=None)}),
                     "input 'inputdata': a shape of unknown rank"),
    "unknown output": (predict_request({"inputdata": BLACK}, output_filter=("logits",)),
                       "'output_filter': no output 'logits'; the model's outputs are 'labels', 'probabilities'"),
    "output twice": (predict_request({"inputdata": BLACK}, output_filter=("labels", "labels")),
                     "'output_filter': output 'labels' is asked for twice"),
    "version label": (predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="mnist", version_label="stable"),
                                                 inputs={"inputdata": tf.make_tensor_proto(BLACK)}),
                      "no version label 'stable': inferq addresses versions by number"),
}


@pytest.mark.parametrize("request_, code, rest", REFUSED_AS_REST.values(), ids=REFUSED_AS_REST.keys())
def test_what_the_rest_route_refuses_is_refused_with_its_message(stand_in, stub, request_, code, rest):
    got, details = refusal(lambda: stub.Predict(request_, timeout=10))
    assert got == code, details
    if rest is not None:
        path, body = rest
        answered = stand_in[0].test_client().post(path, json=body)
        assert answered.status_code == {grpc.StatusCode.NOT_FOUND: 404}.get(code, 400)
        assert details == answered.get_json()["error"]
    assert stand_in[1].sent == []


@pytest.mark.parametrize("request_, message", REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_tensor_is_invalid_argument_and_queues_nothing(stand_in, stub, request_, message):
    code, details = refusal(lambda: stub.Predict(request_, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert message in details
    assert stand_in[1].sent == []


def test_the_refusals_fail_for_what_they_change(stand_in, stub):
    """The cases above share a well-formed request, answered."""
    for request_ in (predict_request({"inputdata": BLACK}), predict_request({"inputdata": tensor(
            float_val=[0.0] * 784)}), predict_request({"inputdata": tensor(tf.uint8, int_val=[255] * 784)}),
            predict_request({"inputdata": BLACK}, version=3, signature="serving_default",
                            output_filter=("probabilities", "labels"))):
        assert stub.Predict(request_, timeout=10).model_spec.version.value == 3
    assert len(stand_in[1].sent) == 4


# --- Classify ------------------------------------------------------------------------------------------

@pytest.fixture
def classifiers(make_app, serve):
    """MNIST (no labels), iris (three labelled classes), a model of two outputs (no class scores) and a text model."""
    serve(specs=[tabular_spec(1), pair_spec(1), text_spec(1)])
    serve(name="host:2")
    app, worker = make_app(max_images_per_request=4)
    worker.outputs.update(probabilities=lambda job: (iris_scores(job) if "features" in job.inputs
                                                     else np.full((job.count, 10), 0.1, np.float32)))
    return app, worker


def example(**features) -> example_pb2.Example:
    made = example_pb2.Example()
    for name, values in features.items():
        feature = made.features.feature[name]
        if isinstance(values[0], bytes):
            feature.bytes_list.value.extend(values)
        elif isinstance(values[0], float):
            feature.float_list.value.extend(values)
        else:
            feature.int64_list.value.extend(values)
    return made


def classify_request(name: str, examples: list, context: example_pb2.Example | None = None,
                     version: int | None = None) -> classification_pb2.ClassificationRequest:
    request = classification_pb2.ClassificationRequest(model_spec=spec(name, version))
    if context is None:
        request.input.example_list.examples.extend(examples)
    else:
        request.input.example_list_with_context.examples.extend(examples)
        request.input.example_list_with_context.context.CopyFrom(context)
    return request


def classes(response: classification_pb2.ClassificationResponse) -> list[list[tuple[str, float]]]:
    return [[(each.label, each.score) for each in item.classes] for item in response.result.classifications]


def test_classify_names_each_class_best_first_as_the_rest_route(classifiers):
    app, worker = classifiers
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    with stubs(app) as (prediction, _):  # the REST route asked while the runtime serves both
        response = prediction.Classify(classify_request("iris", [example(features=row) for row in rows]), timeout=10)
        rest = app.test_client().post("/v1/models/iris:classify",
                                      json={"examples": [{"features": row} for row in rows]})
    setosa, versicolor, virginica = IRIS_LABELS
    assert classes(response) == [[(setosa, f32(0.7)), (versicolor, f32(0.2)), (virginica, f32(0.1))],
                                 [(versicolor, f32(0.7)), (virginica, f32(0.2)), (setosa, f32(0.1))]]
    assert (response.model_spec.name, response.model_spec.version.value) == ("iris", 1)
    job, _ = worker.sent
    np.testing.assert_array_equal(job.inputs["features"], np.array(rows, np.float32))
    assert rest.status_code == 200, rest.get_json()
    assert [[tuple(each) for each in item] for item in rest.get_json()["results"]] == classes(response)


def test_classify_with_a_context_every_example_shares(classifiers):
    app, worker = classifiers
    with stubs(app) as (prediction, _):
        response = prediction.Classify(classify_request("iris", [example_pb2.Example()] * 3,
                                                        context=example(features=[1.0, 2.0, 3.0, 4.0])), timeout=10)
    assert len(response.result.classifications) == 3
    assert worker.sent[0].inputs["features"].tolist() == [[1.0, 2.0, 3.0, 4.0]] * 3


def test_classify_a_model_without_labels_names_classes_by_index(classifiers):
    app, _ = classifiers
    with stubs(app) as (prediction, _):
        response = prediction.Classify(classify_request("mnist", [example(inputdata=[0.0] * 784)]), timeout=10)
    assert classes(response) == [[(str(digit), f32(0.1)) for digit in range(10)]]


CLASSIFY_REFUSED = {
    "not a classifier": (classify_request("pair", [example(ids=[1, 2, 3], weights=[1.0, 1.0, 1.0])]),
                         ("/v1/models/pair:classify", {"examples": [{"ids": [1, 2, 3], "weights": [1, 1, 1]}]})),
    "no examples": (classify_request("iris", []), ("/v1/models/iris:classify", {"examples": []})),
    "unknown feature": (classify_request("iris", [example(petals=[1.0, 2.0, 3.0, 4.0])]),
                        ("/v1/models/iris:classify", {"examples": [{"petals": [1, 2, 3, 4]}]})),
    "in the context too": (classify_request("iris", [example(features=[1.0, 2.0, 3.0, 4.0])],
                                            context=example(features=[1.0, 2.0, 3.0, 4.0])),
                           ("/v1/models/iris:classify", {"examples": [{"features": [1, 2, 3, 4]}],
                                                         "context": {"features": [1, 2, 3, 4]}})),
    "shape": (classify_request("iris", [example(features=[1.0, 2.0, 3.0])]),
              ("/v1/models/iris:classify", {"examples": [{"features": [1, 2, 3]}]})),
    "text for numbers": (classify_request("iris", [example(features=[b"a", b"b", b"c", b"d"])]),
                         ("/v1/models/iris:classify", {"examples": [{"features": ["a", "b", "c", "d"]}]})),
    "too many": (classify_request("iris", [example(features=[1.0, 2.0, 3.0, 4.0])] * 5),
                 ("/v1/models/iris:classify", {"examples": [{"features": [1, 2, 3, 4]}] * 5})),
}


@pytest.mark.parametrize("request_, rest", CLASSIFY_REFUSED.values(), ids=CLASSIFY_REFUSED.keys())
def test_classify_refuses_as_the_rest_route(classifiers, request_, rest):
    app, worker = classifiers
    with stubs(app) as (prediction, _):
        code, details = refusal(lambda: prediction.Classify(request_, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    answered = app.test_client().post(rest[0], json=rest[1])
    assert (answered.status_code, details) == (400, answered.get_json()["error"])
    assert worker.sent == []


def test_classify_without_examples_says_what_to_send(classifiers):
    app, _ = classifiers
    request = classification_pb2.ClassificationRequest(model_spec=spec("iris"), input=input_pb2.Input())
    with stubs(app) as (prediction, _):
        assert refusal(lambda: prediction.Classify(request, timeout=10)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "'input' holds no examples: send 'example_list' or 'example_list_with_context'")


# --- GetModelMetadata, GetModelStatus: the REST routes' answers -------------------------------------------

def metadata_request(name="mnist", version=None, fields=("signature_def",)):
    return get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec(name, version), metadata_field=fields)


def test_metadata_is_the_rest_routes_signature(stand_in, stub):
    rest = stand_in[0].test_client().get("/v1/models/mnist/metadata").get_json()
    for version in (None, 3):
        response = stub.GetModelMetadata(metadata_request(version=version), timeout=10)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        assert response.metadata["signature_def"].Unpack(signatures)
        assert signatures == json_format.ParseDict(rest["metadata"]["signature_def"],
                                                   get_model_metadata_pb2.SignatureDefMap())
        assert (response.model_spec.name, response.model_spec.version.value) == ("mnist", 3)
    inputs = signatures.signature_def["serving_default"].inputs["inputdata"]
    assert (inputs.dtype, [dim.size for dim in inputs.tensor_shape.dim], inputs.name) == (
        tf.float32.as_datatype_enum, [-1, 784], "inputdata:0")


@pytest.mark.parametrize("request_, code, message", [
    (metadata_request(fields=()), grpc.StatusCode.INVALID_ARGUMENT,
     "'metadata_field' is empty: ask for 'signature_def'"),
    (metadata_request(fields=("signature_def", "graph")), grpc.StatusCode.INVALID_ARGUMENT,
     "metadata field 'graph' is not served: inferq answers 'signature_def'"),
    (metadata_request("fashion"), grpc.StatusCode.NOT_FOUND, "no model 'fashion'; served: 'mnist'"),
    (metadata_request(version=4), grpc.StatusCode.NOT_FOUND, "model 'mnist' version 4 is not served; served: 3"),
])
def test_metadata_refusals(stub, request_, code, message):
    assert refusal(lambda: stub.GetModelMetadata(request_, timeout=10)) == (code, message)


def test_model_status_is_the_rest_routes(stand_in, serve):
    app, _ = stand_in
    serve(version=5, name="host:2")
    http = app.test_client()
    with stubs(app) as (_, models):
        for version, path in ((None, "/v1/models/mnist"), (5, "/v1/models/mnist/versions/5")):
            request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec(version=version))
            assert models.GetModelStatus(request, timeout=10) == json_format.ParseDict(
                http.get(path).get_json(), get_model_status_pb2.GetModelStatusResponse())
        answered = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec=spec()), timeout=10)
        assert [(status.version, status.state) for status in answered.model_version_status] == [(3, 30), (5, 30)]
        missing = get_model_status_pb2.GetModelStatusRequest(model_spec=spec(version=9))
        assert refusal(lambda: models.GetModelStatus(missing, timeout=10)) == (
            grpc.StatusCode.NOT_FOUND, "model 'mnist' version 9 is not served; served: 3, 5")


def test_regress_is_unimplemented(stub):
    from tensorflow_serving.apis import regression_pb2

    code, _ = refusal(lambda: stub.Regress(regression_pb2.RegressionRequest(model_spec=spec()), timeout=10))
    assert code == grpc.StatusCode.UNIMPLEMENTED


# --- deadline, a full queue, the broker, the key ------------------------------------------------------------

def test_the_clients_deadline_is_the_jobs(make_app, serve):
    serve()
    app, worker = make_app(sync_timeout_s=30)
    worker.answer = False  # nobody answers: the client gives up at its deadline
    with stubs(app) as (prediction, _):
        code, _ = refusal(lambda: prediction.Predict(predict_request({"inputdata": BLACK}), timeout=0.5))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    [job] = worker.sent
    assert job.deadline is not None and 0 < job.deadline - job.queued_at <= 0.5


def test_a_full_queue_is_unavailable_with_the_rest_routes_retry_after(make_app, serve, fake_redis):
    serve()
    app, worker = make_app(max_interactive_queue_depth=2, max_images_per_request=2, sync_timeout_s=0.2)
    worker.answer = False
    fake_redis.set(keys.drain_rate("mnist"), orjson.dumps({"images_per_s": 0.5, "measured_at": 0}))
    two = np.zeros((2, 784), np.float32)
    with stubs(app) as (prediction, _):
        code, _ = refusal(lambda: prediction.Predict(predict_request({"inputdata": two})))  # admitted, not answered
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.RpcError) as full:
            prediction.Predict(predict_request({"inputdata": two}))
    expected = app.test_client().post(PREDICT, json={"inputs": two.tolist()})
    assert expected.status_code == 503
    assert (full.value.code(), full.value.details()) == (grpc.StatusCode.UNAVAILABLE, expected.get_json()["error"])
    retry = error_details_pb2.RetryInfo()
    [packed] = [detail for detail in rpc_status.from_call(full.value).details if detail.Is(retry.DESCRIPTOR)]
    packed.Unpack(retry)
    assert expected.headers["Retry-After"] != "1"  # from the drain rate, not the fallback
    assert retry.retry_delay.seconds == int(expected.headers["Retry-After"])


def test_an_unreachable_broker_is_unavailable(make_app, unreachable_redis):
    app, _ = make_app(redis_client=unreachable_redis)
    with stubs(app) as (prediction, _):
        assert refusal(lambda: prediction.Predict(predict_request({"inputdata": BLACK}), timeout=10)) == (
            grpc.StatusCode.UNAVAILABLE, "the broker (Redis) does not answer; try again shortly")


def test_the_api_key_as_metadata(make_app, serve):
    serve()
    app, _ = make_app(api_key="s3cret")
    with stubs(app) as (prediction, models):
        request = predict_request({"inputdata": BLACK})
        for call in (lambda: prediction.Predict(request, timeout=10),
                     lambda: models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec=spec()),
                                                   timeout=10),
                     lambda: prediction.Predict(request, metadata=[("authorization", "Bearer guess")], timeout=10)):
            assert refusal(call)[0] == grpc.StatusCode.UNAUTHENTICATED
        assert prediction.Predict(request, metadata=[("authorization", "Bearer s3cret")], timeout=10).outputs


def test_strings_in_and_out(classifiers):
    """A model of text: DT_STRING as ``string_val`` both ways, any bytes."""
    app, worker = classifiers
    worker.outputs.update(verdict=lambda job: [{"b64": base64.b64encode(text.upper()).decode()}
                                               for text in job.inputs["text"]])
    texts = np.array([b"good", b"", b"\xff\xfe"], dtype=object)
    with stubs(app) as (prediction, _):
        response = prediction.Predict(predict_request({"text": texts}, name="sentiment"), timeout=10)
    assert tf.make_ndarray(response.outputs["verdict"]).tolist() == [b"GOOD", b"", b"\xff\xfe"]
    assert worker.sent[0].inputs["text"].tolist() == texts.tolist()
