"""KServe v2, Triton's extensions and TF Serving for every model of the repository, on the stand-in
worker: model configuration and repository index, models of several inputs and of other types than
MNIST's (INT64, FP32, BYTES), and ``:classify``."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from inferq.catalog import ModelCatalog
from tests.support.specs import IRIS_LABELS, image_classifier_spec, mnist_spec, pair_spec, tabular_spec, text_spec
from tests.support.stand_in import STAND_IN_VERSION

HEADER_LENGTH = "Inference-Header-Content-Length"


def f32(value: float) -> float:
    """``value`` as an FP32 output carries it, written to JSON exactly."""
    return float(np.float32(value))


def weighted(job) -> np.ndarray:
    """The pair model's ``score``: each row's ids times its weights, summed."""
    return (job.inputs["ids"] * job.inputs["weights"]).sum(axis=1).astype(np.float32)


def first_ids(job) -> np.ndarray:
    """The pair model's ``rank``: each row's first two ids."""
    return job.inputs["ids"][:, :2].astype(np.int32)


def verdicts(job) -> list[str]:
    """The text model's ``verdict``: each text upper-cased."""
    return [text.decode().upper() for text in job.inputs["text"]]


def lengths(job) -> np.ndarray:
    return np.array([len(text) for text in job.inputs["text"]], np.float32)


#: The iris model's class scores for item i: [0.7, 0.2, 0.1] rolled by i.
IRIS_SCORES = np.array([0.7, 0.2, 0.1], np.float32)


def iris_scores(job) -> np.ndarray:
    return np.stack([np.roll(IRIS_SCORES, index) for index in range(job.count)])


@pytest.fixture
def repository(make_app, serve, fake_redis):
    """MNIST, an RGB classifier (versions 1 and 2), a tabular classifier, a model of two inputs and one of
    text, each with a live worker; a model in the catalog alone (its workers gone)."""
    serve(specs=[mnist_spec(STAND_IN_VERSION), image_classifier_spec(1), image_classifier_spec(2), tabular_spec(1),
                 pair_spec(1), text_spec(4)])
    ModelCatalog(fake_redis).publish([pair_spec(1, name="gone")])
    app, worker = make_app(max_images_per_request=8)
    worker.outputs.update(score=lambda job: (lengths if "text" in job.inputs else weighted)(job), rank=first_ids,
                          verdict=verdicts, probabilities=lambda job: (iris_scores(job) if "features" in job.inputs
                                                                       else np.full((job.count, 10), 0.1, np.float32)))
    return app.test_client(), worker


# --- Triton's model configuration and repository index ---

def test_the_mnist_configuration_batches_784_floats(repository):
    client, _ = repository
    config = client.get("/v2/models/mnist/config").get_json()
    assert (config["name"], config["platform"], config["backend"]) == ("mnist", "tensorflow_savedmodel", "tensorflow")
    assert config["max_batch_size"] == 64  # MAX_BATCH_SIZE
    [image] = config["input"]
    assert (image["name"], image["data_type"], image["dims"]) == ("inputdata", "TYPE_FP32", [784])
    labels, probabilities = config["output"]
    assert (labels["name"], labels["data_type"], labels["dims"], labels["reshape"]) == (
        "labels", "TYPE_INT64", [1], {"shape": []})
    assert (probabilities["data_type"], probabilities["dims"]) == ("TYPE_FP32", [10])
    assert config["dynamic_batching"] == {"preferred_batch_size": [], "max_queue_delay_microseconds": 5000,
                                          "preserve_ordering": False, "priority_levels": 2,
                                          "default_priority_level": 1, "priority_queue_policy": {}}
    assert config["version_policy"] == {"latest": {"num_versions": 1}}
    assert client.get(f"/v2/models/mnist/versions/{STAND_IN_VERSION}/config").get_json() == config


def test_a_models_own_batching_and_versions_are_in_its_configuration(repository):
    client, _ = repository
    config = client.get("/v2/models/cifar/config").get_json()
    assert config["max_batch_size"] == 16 and config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert config["input"][0]["dims"] == [32, 32, 3] and config["output"][0]["dims"] == [10]
    assert config["version_policy"] == {"latest": {"num_versions": 2}}
    assert client.get("/v2/models/cifar/versions/1/config").get_json()["name"] == "cifar"
    pair = client.get("/v2/models/pair/config").get_json()
    assert [(tensor["name"], tensor["data_type"], tensor["dims"]) for tensor in pair["input"]] == [
        ("ids", "TYPE_INT64", [3]), ("weights", "TYPE_FP32", [3])]
    text = client.get("/v2/models/sentiment/config").get_json()
    assert [(tensor["data_type"], tensor["dims"]) for tensor in text["input"]] == [("TYPE_STRING", [1])]


@pytest.mark.parametrize(("path", "message"), [
    ("/v2/models/fashion/config", "no model 'fashion'; served: 'cifar', 'gone', 'iris', 'mnist', 'pair', 'sentiment'"),
    ("/v2/models/cifar/versions/5/config", "model 'cifar' version 5 is not served; served: 1, 2"),
])
def test_the_configuration_of_an_unknown_model_or_version_is_404(repository, path, message):
    client, _ = repository
    response = client.get(path)
    assert (response.status_code, response.get_json()) == (404, {"error": message})


def ready(name: str, version: int) -> dict:
    return {"name": name, "version": str(version), "state": "READY", "reason": ""}


def test_the_repository_index_lists_every_model_version_and_whether_it_can_answer(repository):
    client, _ = repository
    every = [ready("cifar", 1), ready("cifar", 2),
             {"name": "gone", "version": "1", "state": "UNAVAILABLE", "reason": "no live worker serves it"},
             ready("iris", 1), ready("mnist", STAND_IN_VERSION), ready("pair", 1), ready("sentiment", 4)]
    for body in ({}, {"ready": False}):
        response = client.post("/v2/repository/index", json=body)
        assert (response.status_code, response.get_json()) == (200, every)
    assert client.post("/v2/repository/index").get_json() == every  # no body at all, as tritonclient may send
    assert client.post("/v2/repository/index", json={"ready": True}).get_json() == [
        entry for entry in every if entry["state"] == "READY"]


@pytest.mark.parametrize(("body", "message"), [
    (b'{"ready": "yes"}', "'ready' must be true or false, got 'yes'"),
    (b"[]", "the index request must be a JSON object"),
    (b"{", "the index request is not JSON"),
])
def test_a_malformed_index_request_is_400(repository, body, message):
    client, _ = repository
    response = client.post("/v2/repository/index", data=body)
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_a_model_whose_workers_are_gone_is_not_ready_but_described(repository):
    client, _ = repository
    response = client.get("/v2/models/gone/ready")
    assert (response.status_code, response.get_json()) == (
        400, {"error": "no live worker serves model 'gone' version 1", "ready": False})
    assert client.get("/v2/models/gone").get_json()["versions"] == ["1"]
    assert client.get("/v2/models/pair/ready").get_json() == {"ready": True}


# --- KServe v2 inference on models of other inputs ---

IDS = np.array([[1, 2, 3], [4, 5, 2**40]], np.int64)
WEIGHTS = np.array([[0.5, 0.25, 2.0], [1.0, 0.0, 0.5]], np.float32)


def test_two_inputs_of_different_types_as_json(repository):
    client, worker = repository
    request = {"id": "pair-1", "inputs": [
        {"name": "weights", "datatype": "FP32", "shape": [2, 3], "data": WEIGHTS.ravel().tolist()},
        {"name": "ids", "datatype": "INT64", "shape": [2, 3], "data": IDS.tolist()},
    ]}
    response = client.post("/v2/models/pair/infer", json=request)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"model_name": "pair", "model_version": "1", "id": "pair-1", "outputs": [
        {"name": "score", "datatype": "FP32", "shape": [2], "data": [f32(7.0), f32(4.0 + 2.0**39)]},
        {"name": "rank", "datatype": "INT32", "shape": [2, 2], "data": [1, 2, 4, 5]},
    ]}
    [job] = worker.sent
    assert worker.models == ["pair"]
    assert job.inputs["ids"].dtype == np.int64 and job.inputs["ids"].tolist() == IDS.tolist()  # 2**40 intact
    assert job.inputs["weights"].dtype == np.float32 and np.array_equal(job.inputs["weights"], WEIGHTS)


def pair_inputs(binary: bool, ids_type: str = "INT64") -> list[InferInput]:
    ids = InferInput("ids", [2, 3], ids_type)
    ids.set_data_from_numpy(IDS if ids_type == "INT64" else np.array([[1, 2, 3], [4, 5, 6]], np.int32),
                            binary_data=binary)
    weights = InferInput("weights", [2, 3], "FP32")
    weights.set_data_from_numpy(WEIGHTS, binary_data=binary)
    return [ids, weights]


def parse(response):
    length = response.headers.get(HEADER_LENGTH)
    return InferenceServerClient.parse_response_body(response.data, header_length=None if length is None
                                                     else int(length))


def test_two_inputs_of_different_types_as_binary_both_ways(repository):
    client, worker = repository
    outputs = [InferRequestedOutput("rank"), InferRequestedOutput("score")]
    body, json_size = InferenceServerClient.generate_request_body(pair_inputs(binary=True), outputs=outputs)
    response = client.post("/v2/models/pair/infer", data=body, headers={HEADER_LENGTH: str(json_size)})
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "application/octet-stream"
    result = parse(response)
    assert [output["name"] for output in result.get_response()["outputs"]] == ["rank", "score"]
    assert result.as_numpy("rank").dtype == np.int32 and result.as_numpy("rank").tolist() == [[1, 2], [4, 5]]
    np.testing.assert_array_equal(result.as_numpy("score"), np.array([7.0, 4.0 + 2.0**39], np.float32))
    assert worker.sent[0].inputs["ids"].tolist() == IDS.tolist()


def test_a_narrower_integer_type_is_taken_exactly_and_a_wider_float_refused(repository):
    client, worker = repository
    body, json_size = InferenceServerClient.generate_request_body(pair_inputs(binary=True, ids_type="INT32"))
    response = client.post("/v2/models/pair/infer", data=body, headers={HEADER_LENGTH: str(json_size)})
    assert response.status_code == 200
    assert worker.sent[0].inputs["ids"].dtype == np.int32  # kept narrow: the worker casts
    request = {"inputs": [{"name": "ids", "datatype": "INT64", "shape": [1, 3], "data": [1, 2, 3]},
                          {"name": "weights", "datatype": "FP64", "shape": [1, 3], "data": [0.1, 0.2, 0.3]}]}
    refused = client.post("/v2/models/pair/infer", json=request)
    assert refused.status_code == 400
    assert refused.get_json()["error"] == ("input 'weights': datatype 'FP64'; the model takes FP32 [-1, 3] (or a "
                                           "narrower number type that converts to it exactly)")
    assert len(worker.sent) == 1


@pytest.mark.parametrize(("inputs", "message"), [
    ([{"name": "ids", "datatype": "INT64", "shape": [1, 3], "data": [1, 2, 3]}],
     "no input 'weights' (FP32 [-1, 3]) in the request; the model's inputs are 'ids' (INT64 [-1, 3]), "
     "'weights' (FP32 [-1, 3]), all of them needed"),
    ([{"name": "ids", "datatype": "INT64", "shape": [2, 3], "data": [1, 2, 3] * 2},
      {"name": "weights", "datatype": "FP32", "shape": [1, 3], "data": [0.1, 0.2, 0.3]}],
     "the request: inputs of different batch sizes ('ids': 2, 'weights': 1); every input has one entry per item"),
    ([{"name": "ids", "datatype": "INT64", "shape": [1, 3], "data": [1, 2.5, 3]},
      {"name": "weights", "datatype": "FP32", "shape": [1, 3], "data": [0.1, 0.2, 0.3]}],
     "input 'ids': 2.5 at [1] is not a whole number (INT64)"),
])
def test_what_a_request_of_several_inputs_gets_wrong_is_named(repository, inputs, message):
    client, worker = repository
    response = client.post("/v2/models/pair/infer", json={"inputs": inputs})
    assert (response.status_code, response.get_json()) == (400, {"error": message})
    assert worker.sent == []


TEXTS = ["good film", "é bad ✓"]


def test_bytes_inputs_and_outputs_as_json(repository):
    client, worker = repository
    request = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": TEXTS}]}
    response = client.post("/v2/models/sentiment/infer", json=request)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["outputs"] == [
        {"name": "verdict", "datatype": "BYTES", "shape": [2], "data": [text.upper() for text in TEXTS]},
        {"name": "score", "datatype": "FP32", "shape": [2], "data": [9.0, 10.0]},  # UTF-8 bytes
    ]
    assert response.get_json()["model_version"] == "4"
    assert worker.sent[0].inputs["text"].tolist() == [text.encode() for text in TEXTS]


def test_bytes_inputs_and_outputs_as_binary(repository):
    client, worker = repository
    text = InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array([text.encode() for text in TEXTS], dtype=object), binary_data=True)
    body, json_size = InferenceServerClient.generate_request_body([text], outputs=[InferRequestedOutput("verdict")])
    response = client.post("/v2/models/sentiment/infer", data=body, headers={HEADER_LENGTH: str(json_size)})
    assert response.status_code == 200, response.data[:300]
    assert parse(response).as_numpy("verdict").tolist() == [text.upper().encode() for text in TEXTS]
    assert worker.sent[0].inputs["text"].tolist() == [text.encode() for text in TEXTS]


def test_a_pinned_version_answers_at_that_version(repository):
    client, worker = repository
    request = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [0] * 3072}]}
    assert client.post("/v2/models/cifar/versions/1/infer", json=request).get_json()["model_version"] == "1"
    assert worker.sent[-1].version == 1
    assert client.post("/v2/models/cifar/infer", json=request).get_json()["model_version"] == "2"
    assert worker.sent[-1].version is None


# --- TF Serving on models of other inputs ---

def test_tf_serving_row_format_names_every_input(repository):
    client, worker = repository
    instances = [{"ids": ids, "weights": weights} for ids, weights in zip(IDS.tolist(), WEIGHTS.tolist(), strict=True)]
    response = client.post("/v1/models/pair:predict", json={"instances": instances})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"predictions": [{"score": f32(7.0), "rank": [1, 2]},
                                                   {"score": f32(4.0 + 2.0**39), "rank": [4, 5]}]}
    assert worker.sent[0].inputs["ids"].tolist() == IDS.tolist()


def test_tf_serving_column_format_names_every_input(repository):
    client, _ = repository
    response = client.post("/v1/models/pair/versions/1:predict",
                           json={"inputs": {"ids": IDS.tolist(), "weights": WEIGHTS.tolist()}})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"outputs": {"score": [f32(7.0), f32(4.0 + 2.0**39)], "rank": [[1, 2], [4, 5]]}}


@pytest.mark.parametrize(("body", "message"), [
    ({"instances": [[1, 2, 3]]}, "instance 0 must be an object naming each of the model's inputs: 'ids' (int64 "
                                 "[-1, 3]), 'weights' (float32 [-1, 3])"),
    ({"instances": [{"ids": [1, 2, 3]}]}, "instance 0: no input 'weights'; the model's inputs are 'ids' (int64 "
                                          "[-1, 3]), 'weights' (float32 [-1, 3]), all of them needed"),
    ({"inputs": [[1, 2, 3]]}, "'inputs' must be an object naming each of the model's inputs"),
    ({"inputs": {"ids": [[1, 2, 3]], "weights": [[0.5, 0.5, 0.5]] * 2}},
     "the request: inputs of different batch sizes ('ids': 1, 'weights': 2)"),
])
def test_tf_serving_requests_of_a_model_of_several_inputs_that_are_wrong(repository, body, message):
    client, worker = repository
    response = client.post("/v1/models/pair:predict", json=body)
    assert response.status_code == 400 and message in response.get_json()["error"]
    assert worker.sent == []


def test_tf_serving_strings_in_and_out(repository):
    client, worker = repository
    response = client.post("/v1/models/sentiment:predict",
                           json={"instances": ["good film", {"b64": "w6kgYmFkIOKckw=="}]})  # "é bad ✓"
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"predictions": [{"verdict": "GOOD FILM", "score": 9.0},
                                                   {"verdict": "É BAD ✓", "score": 10.0}]}
    assert worker.sent[0].inputs["text"].tolist() == [text.encode() for text in TEXTS]


def test_tf_serving_metadata_of_a_model_of_several_inputs(repository):
    client, _ = repository
    signature = client.get("/v1/models/pair/metadata").get_json()["metadata"]["signature_def"]["signature_def"]
    inputs = signature["serving_default"]["inputs"]
    assert {name: tensor["dtype"] for name, tensor in inputs.items()} == {"ids": "DT_INT64", "weights": "DT_FLOAT"}
    assert [dim["size"] for dim in inputs["ids"]["tensor_shape"]["dim"]] == ["-1", "3"]


# --- TF Serving's :classify ---

def test_classify_names_each_class_best_first(repository):
    client, worker = repository
    examples = [{"features": [5.1, 3.5, 1.4, 0.2]}, {"features": [6.7, 3.0, 5.2, 2.3]}]
    response = client.post("/v1/models/iris:classify", json={"examples": examples})
    assert response.status_code == 200, response.get_json()
    setosa, versicolor, virginica = IRIS_LABELS
    assert response.get_json() == {"results": [
        [[setosa, f32(0.7)], [versicolor, f32(0.2)], [virginica, f32(0.1)]],
        [[versicolor, f32(0.7)], [virginica, f32(0.2)], [setosa, f32(0.1)]],
    ]}
    [job] = worker.sent
    assert job.inputs["features"].dtype == np.float32
    np.testing.assert_array_equal(job.inputs["features"], np.array([e["features"] for e in examples], np.float32))


def test_classify_takes_features_every_example_shares_from_the_context(repository):
    client, worker = repository
    body = {"examples": [{}, {}, {}], "context": {"features": [1, 2, 3, 4]}}
    response = client.post("/v1/models/iris/versions/1:classify", json=body)
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["results"]) == 3
    assert worker.sent[0].inputs["features"].tolist() == [[1.0, 2.0, 3.0, 4.0]] * 3


def test_classify_a_model_without_class_names_names_classes_by_index(repository):
    client, _ = repository
    response = client.post("/v1/models/mnist:classify", json={"examples": [{"inputdata": [0.0] * 784}]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"results": [[[str(digit), f32(0.1)] for digit in range(10)]]}  # ties: model order


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/v1/models/pair:classify", {"examples": [{"ids": [1, 2, 3], "weights": [1, 1, 1]}]},
     "model 'pair' version 1 has no one output of class scores for ':classify' (float16, float32 or float64 "
     "[-1, C]); its outputs are 'score' (float32 [-1]), 'rank' (int32 [-1, 2]); ask ':predict' instead"),
    ("/v1/models/iris:classify", {"examples": []}, "'examples' must be a list of examples"),
    ("/v1/models/iris:classify", {"examples": [{"petals": [1, 2, 3, 4]}]},
     "example 0: no input 'petals'; the model's inputs are 'features' (float32 [-1, 4])"),
    ("/v1/models/iris:classify", {"examples": [{"features": [1, 2, 3, 4]}], "context": {"features": [1, 2, 3, 4]}},
     "example 0: feature 'features' is in 'context' too"),
    ("/v1/models/iris:classify", {"examples": [{"features": [1, 2, 3]}]},
     "input 'features': shape [1, 3]; the model takes float32 [-1, 4]"),
])
def test_classify_requests_that_cannot_be_answered_are_400(repository, path, body, message):
    client, worker = repository
    response = client.post(path, json=body)
    assert response.status_code == 400 and message in response.get_json()["error"], response.get_json()
    assert worker.sent == []
