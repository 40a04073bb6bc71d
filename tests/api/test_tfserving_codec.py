"""TF Serving's REST bodies to and from arrays: row and column format, classify's examples, the
answers, and every body refused with what its 400 says. No app, no Redis: the codec is pure."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from api.errors import ApiError
from api.tensor_values import NUMPY
from api.tfserving.classify import classifications, not_a_classifier
from api.tfserving.codec import columnar_outputs, decode_columns, decode_examples, decode_instances, predictions
from inferq.dtypes import BY_NAME
from inferq.model_config import ModelConfig
from inferq.model_spec import ModelSpec, TensorSpec

IMAGES = TensorSpec("images", "float32", (-1, 784))
LABELS = TensorSpec("labels", "int64", (-1,))
PROBABILITIES = TensorSpec("probabilities", "float32", (-1, 10))
MNIST = ModelSpec("mnist", 3, "serving_default", (IMAGES,), (LABELS, PROBABILITIES))
#: Three inputs, as TF Serving's REST page has them: a string, a vector, a matrix.
SENSORS = ModelSpec("sensors", 1, "serving_default", (
    TensorSpec("tag", "string", (-1,)), TensorSpec("signal", "int32", (-1, 5)),
    TensorSpec("sensor", "float32", (-1, 2, 2))), (LABELS,))
ROW = [0.0] * 784


def one(dtype: str, shape: tuple[int, ...]) -> ModelSpec:
    tensor = TensorSpec("x", dtype, shape)
    return ModelSpec("m", 1, "serving_default", (tensor,), (tensor,))


def refused(decode, body: object, spec: ModelSpec = MNIST, max_items: int = 8, **extra: object) -> str:
    with pytest.raises(ApiError) as caught:
        decode(body, spec, max_items, **extra)
    assert caught.value.status == 400
    return caught.value.message


def test_instances_of_one_input_are_its_values_or_objects_naming_it():
    for instances in ([ROW, ROW], [{"images": ROW}, {"images": ROW}], [np.zeros((28, 28)).tolist()] * 2):
        got = decode_instances(instances, MNIST, 8)
        assert list(got) == ["images"] and got["images"].shape == (2, 784) and got["images"].dtype == np.float32


def test_instances_of_several_inputs_name_each():
    instances = [{"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
                 {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]}]
    got = decode_instances(instances, SENSORS, 8)
    assert got["tag"].tolist() == [b"foo", b"bar"]
    assert got["signal"].dtype == np.int32 and got["signal"].tolist()[1] == [3, 4, 1, 2, 5]
    assert got["sensor"].shape == (2, 2, 2) and got["sensor"].dtype == np.float32


def test_columns_are_the_value_of_one_input_or_an_object_naming_each():
    assert decode_columns([ROW], MNIST, 8)["images"].shape == (1, 784)
    assert decode_columns({"images": [ROW, ROW]}, MNIST, 8)["images"].shape == (2, 784)
    got = decode_columns({"tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5]] * 2,
                          "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}, SENSORS, 8)
    assert got["tag"].tolist() == [b"foo", b"bar"] and got["sensor"].shape == (2, 2, 2)


def test_strings_are_text_or_base64():
    got = decode_instances(["é", {"b64": base64.b64encode(b"\xff\x00").decode()}], one("string", (-1,)), 8)
    assert got["x"].tolist() == ["é".encode(), b"\xff\x00"]


def test_nan_and_infinities_are_floats():
    got = decode_columns([[float("nan"), float("-inf")]], one("float64", (-1, 2)), 8)["x"]
    assert np.isnan(got[0, 0]) and got[0, 1] == -np.inf


@pytest.mark.parametrize(("instances", "message"), [
    ({"images": ROW}, "'instances' must be a list of instances, one per item, at least one"),
    ([], "'instances' must be a list of instances, one per item, at least one"),
    ([ROW] * 9, "'instances': 9 items, more than the 8 allowed in one request"),
    ([ROW, {"images": ROW}], "instance 1 is an object naming inputs, instance 0 a value; send every instance one way"),
    ([{"images": ROW}, ROW], "instance 1 is a value, instance 0 an object naming inputs; send every instance one way"),
    ([{"pixels": ROW}], "instance 0: no input 'pixels'; the model's inputs are 'images' (float32 [-1, 784])"),
    ([{"images": ROW, "extra": 1}], "instance 0: no input 'extra'"),
    ([ROW, ROW[1:]], "input 'images': lists of different lengths at the same depth"),
    ([ROW[1:]], "input 'images': shape [1, 783]; the model takes float32 [-1, 784] (-1: any size; the first "
                "dimension is the batch)"),
    ([ROW[1:] + ["x"]], "input 'images': \"x\" at [0, 783] is not a number (float32)"),
    ([ROW[1:] + [{"b64": "AA=="}]], 'input \'images\': {"b64": "AA=="} at [0, 783] is not a number (float32)'),
])
def test_instances_refused(instances, message):
    assert message in refused(decode_instances, instances)


@pytest.mark.parametrize(("instances", "message"), [
    ([["a", "b", "c", "d", "e"]], "instance 0 must be an object naming each of the model's inputs: 'tag' "
                                  "(string [-1]), 'signal' (int32 [-1, 5]), 'sensor' (float32 [-1, 2, 2])"),
    ([{"tag": "a", "signal": [1] * 5}], "instance 0: no input 'sensor'; the model's inputs are 'tag' (string [-1]), "
                                        "'signal' (int32 [-1, 5]), 'sensor' (float32 [-1, 2, 2]), all of them needed"),
    ([{"tag": 1, "signal": [1] * 5, "sensor": [[1, 2], [3, 4]]}], "input 'tag': 1 at [0] is not a string or "
                                                                  '{"b64": "..."} (string)'),
    ([{"tag": {"b64": "!!"}, "signal": [1] * 5, "sensor": [[1, 2], [3, 4]]}], "input 'tag': {\"b64\": \"!!\"} at "
                                                                              "[0] is not base64"),
    ([{"tag": "a", "signal": [1, 2, 3, 4, 2 ** 31], "sensor": [[1, 2], [3, 4]]}],
     "input 'signal': 2147483648 at [0, 4] does not fit int32 (-2147483648..2147483647)"),
    ([{"tag": "a", "signal": [1, 2, 3, 4, 0.5], "sensor": [[1, 2], [3, 4]]}],
     "input 'signal': 0.5 at [0, 4] is not a whole number (int32)"),
])
def test_instances_of_several_inputs_refused(instances, message):
    assert refused(decode_instances, instances, SENSORS) == message


@pytest.mark.parametrize(("inputs", "message"), [
    (["foo"], "'inputs' must be an object naming each of the model's inputs: 'tag' (string [-1])"),
    ({"tag": ["a"], "signal": [[1] * 5], "sensor": [[[1, 2], [3, 4]]], "noise": 1}, "'inputs': no input 'noise'"),
    ({"tag": ["a", "b"], "signal": [[1] * 5], "sensor": [[[1, 2], [3, 4]]]},
     "the request: inputs of different batch sizes ('tag': 2, 'signal': 1, 'sensor': 1); every input has one entry "
     "per item"),
    ({"tag": "a", "signal": [[1] * 5], "sensor": [[[1, 2], [3, 4]]]}, "input 'tag': a single value, not a batch"),
])
def test_columns_refused(inputs, message):
    assert message in refused(decode_columns, inputs, SENSORS)


def test_columns_of_one_input_refused():
    assert refused(decode_columns, {"pixels": [ROW]}) == ("'inputs': no input 'pixels'; the model's inputs are "
                                                          "'images' (float32 [-1, 784])")
    assert "input 'images': no items (shape [0])" in refused(decode_columns, [])


CLASSIFIER = ModelSpec("iris", 2, "serving_default", (
    TensorSpec("petal", "float32", (-1, 2)), TensorSpec("kind", "string", (-1,)), TensorSpec("count", "int64", (-1,)),
), (TensorSpec("scores", "float32", (-1, 3)),), ModelConfig(labels=("setosa", "versicolor", "virginica")))


def test_examples_give_each_input_its_feature():
    examples = [{"petal": [1.5, 0.2], "kind": "wild", "count": 3},
                {"petal": [4.5, 1.5], "kind": {"b64": "AP8="}, "count": [3]}]
    got = decode_examples(examples, CLASSIFIER, 8)
    assert (got["petal"] == np.array([[1.5, 0.2], [4.5, 1.5]], np.float32)).all() and got["petal"].dtype == np.float32
    assert got["kind"].tolist() == [b"wild", b"\x00\xff"] and got["count"].tolist() == [3, 3]


def test_context_features_go_to_every_example():
    got = decode_examples([{"petal": [1, 2]}, {"petal": [3, 4]}], CLASSIFIER, 8, context={"kind": "x", "count": 1})
    assert got["kind"].tolist() == [b"x", b"x"] and got["count"].tolist() == [1, 1]


def test_a_feature_is_a_value_or_a_list_of_values_whichever_the_input_shape():
    for spec in (one("float32", (-1,)), one("float32", (-1, 1))):
        got = decode_examples([{"x": [2.5]}, {"x": 3}], spec, 8)["x"]
        assert got.ravel().tolist() == [2.5, 3.0] and got.shape == (2, *spec.inputs[0].shape[1:])


@pytest.mark.parametrize(("examples", "context", "message"), [
    ({"petal": [1, 2]}, None, "'examples' must be a list of examples (objects of features), one per item"),
    ([[1, 2]], None, "example 0 is not an object of features"),
    ([{"petal": [1, 2], "kind": "a"}], None, "example 0: no feature 'count'; the model's inputs are 'petal' "
                                             "(float32 [-1, 2]), 'kind' (string [-1]), 'count' (int64 [-1]), all of "
                                             "them needed"),
    ([{"petal": [1, 2], "kind": "a", "count": 1, "colour": "red"}], None, "example 0: no input 'colour'"),
    ([{"petal": [[1, 2]], "kind": "a", "count": 1}], None, "example 0: feature 'petal' holds lists; a feature is a "
                                                            "value or a list of values"),
    ([{"petal": [1, 2], "kind": "a"}], {"kind": "b", "count": 1}, "example 0: feature 'kind' is in 'context' too"),
    ([{"petal": [1, 2]}], ["kind"], "'context' must be an object of features that every example shares"),
    ([{"petal": [1, 2, 3], "kind": "a", "count": 1}], None, "input 'petal': shape [1, 3]; the model takes float32 "
                                                            "[-1, 2]"),
    ([{"petal": [1, 2], "kind": "a", "count": 1.5}], None,
     "input 'count': 1.5 at [0, 0] is not a whole number (int64)"),
])
def test_examples_refused(examples, context, message):
    assert message in refused(decode_examples, examples, CLASSIFIER, context=context)


def test_predictions_are_per_item_values_or_objects():
    labels, scores = np.array([7, 2]), np.array([[0.5, 0.25], [1.0, 0.0]], np.float32)
    assert predictions({"labels": labels}) == [7, 2]
    assert predictions({"labels": labels, "scores": scores}) == [{"labels": 7, "scores": [0.5, 0.25]},
                                                                 {"labels": 2, "scores": [1.0, 0.0]}]
    assert columnar_outputs({"labels": labels}) == [7, 2]
    assert columnar_outputs({"labels": labels, "scores": scores}) == {"labels": [7, 2],
                                                                      "scores": [[0.5, 0.25], [1.0, 0.0]]}


def test_string_outputs_are_text_else_base64_and_always_for_bytes_names():
    values = np.array([b"ok", b"\xff"], dtype=object)
    assert predictions({"words": values}) == ["ok", {"b64": "/w=="}]
    assert predictions({"image_bytes": values}) == [{"b64": "b2s="}, {"b64": "/w=="}]
    assert columnar_outputs({"words": np.array([["a", "b"]])}) == [["a", "b"]]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_arrays_go_through_predictions_and_back_as_instances(data):
    dtype = data.draw(st.sampled_from(list(BY_NAME)))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    if dtype == "string":
        cells = data.draw(st.lists(st.binary(max_size=8), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        array = np.empty(len(cells), dtype=object)
        array[:] = cells
        array = array.reshape(shape)
    else:
        array = data.draw(hnp.arrays(NUMPY[dtype], shape))
    spec = one(dtype, (-1, *shape[1:]))
    body = json.loads(json.dumps({"predictions": predictions({"x": array})}))  # NaN as TF Serving writes it
    got = decode_instances(body["predictions"], spec, 64)["x"]
    assert got.dtype == array.dtype and got.shape == array.shape
    if dtype == "string":
        assert got.tolist() == array.tolist()
    else:
        np.testing.assert_array_equal(got, array)


def test_classifications_best_first_by_label_or_index():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.0, 0.5]], np.float64)
    assert classifications(scores, ("setosa", "versicolor", "virginica")) == {"results": [
        [["versicolor", 0.7], ["virginica", 0.2], ["setosa", 0.1]],
        [["setosa", 0.5], ["virginica", 0.5], ["versicolor", 0.0]],  # a tie keeps the model's order
    ]}
    assert classifications(scores[:1], None) == {"results": [[["1", 0.7], ["2", 0.2], ["0", 0.1]]]}


def test_classifications_need_a_score_per_label():
    with pytest.raises(ValueError, match=r"scores of shape \[1, 3\] are not one score per class of 2"):
        classifications(np.zeros((1, 3)), ("a", "b"))


def output_spec(*outputs: TensorSpec, labels: tuple[str, ...] | None = None) -> ModelSpec:
    return ModelSpec("m", 4, "serving_default", (IMAGES,), outputs, ModelConfig(labels=labels))


LOGITS = TensorSpec("logits", "float32", (-1, 10))


def test_the_class_output():
    assert MNIST.class_output() == PROBABILITIES  # the one float [-1, C]
    digits = tuple("0123456789")
    assert output_spec(LABELS, PROBABILITIES, labels=digits).class_output() == PROBABILITIES
    assert output_spec(LOGITS, PROBABILITIES).class_output() == PROBABILITIES  # named as scores
    assert output_spec(LOGITS, TensorSpec("scores", "float16", (-1, 3)), labels=("a", "b", "c")).class_output() \
        == TensorSpec("scores", "float16", (-1, 3))


@pytest.mark.parametrize("spec", [
    output_spec(LABELS),  # no float output
    output_spec(PROBABILITIES, labels=("a", "b")),  # not one score per label
    output_spec(LOGITS, TensorSpec("other", "float32", (-1, 10))),  # two, neither named as scores
    output_spec(TensorSpec("probabilities", "float32", (-1, 10, 2))),  # not [-1, C]
    output_spec(TensorSpec("probabilities", "float32", (-1, -1))),  # C unknown
    output_spec(TensorSpec("probabilities", "int32", (-1, 10))),
])
def test_no_class_output(spec):
    assert spec.class_output() is None


def test_a_model_without_class_scores_is_a_400_for_classify():
    error = not_a_classifier(output_spec(LABELS, labels=("a", "b")))
    assert error.status == 400
    assert error.message == ("model 'm' version 4 has no one output of class scores for ':classify' (float16, "
                             "float32 or float64 [-1, 2] (its 2 labels)); its outputs are 'labels' (int64 [-1]); "
                             "ask ':predict' instead")
