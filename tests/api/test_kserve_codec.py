"""KServe v2 tensors to and from arrays: every type both ways, as JSON and binary, and every request
the codec refuses, with what its 400 says. No app, no Redis: the codec is pure."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from api.errors import ApiError
from api.kserve.codec import decode_inputs, encode_outputs, requested_outputs
from api.tensor_values import NUMPY
from inferq.dtypes import BY_KSERVE, BY_NAME
from inferq.model_spec import ModelSpec, TensorSpec

DTYPES = list(BY_NAME)
IMAGES = TensorSpec("images", "float32", (-1, 784))
LABELS = TensorSpec("labels", "int64", (-1,))
PROBABILITIES = TensorSpec("probabilities", "float32", (-1, 10))
MNIST = ModelSpec("mnist", 3, "serving_default", (IMAGES,), (LABELS, PROBABILITIES))
#: Two inputs, to see them checked together.
PAIR = ModelSpec("pair", 1, "serving_default",
                 (TensorSpec("a", "int32", (-1, 2)), TensorSpec("b", "string", (-1,))), (LABELS,))


def one(dtype: str, shape: tuple[int, ...] = (-1, 2, 3)) -> ModelSpec:
    tensor = TensorSpec("x", dtype, shape)
    return ModelSpec("m", 1, "serving_default", (tensor,), (tensor,))


def sample(dtype: str) -> np.ndarray:
    """Two items [2, 3] of ``dtype``, with its edge values."""
    if dtype == "string":
        values = [b"", b"text", "é√".encode(), b"\x00\xff", b"a" * 300, b"z"] * 2
        return np.array(values, dtype=object).reshape(2, 2, 3)
    if dtype == "bool":
        return np.array([True, False] * 6).reshape(2, 2, 3)
    numpy = NUMPY[dtype]
    if numpy.kind in "iu":
        info = np.iinfo(numpy)
        return np.array([info.min, info.max, 0, 1, info.max - 1, 7] * 2, dtype=numpy).reshape(2, 2, 3)
    info = np.finfo(numpy)
    return np.array([np.nan, np.inf, -np.inf, info.max, info.tiny, -0.5] * 2, dtype=numpy).reshape(2, 2, 3)


def round_trip(array: np.ndarray, dtype: str, binary: bool) -> np.ndarray:
    """``array`` as an output of the model, through JSON, back in as a request's input."""
    spec = one(dtype, (-1, *array.shape[1:]))
    outputs, blobs = encode_outputs({"x": array}, [(spec.outputs[0], binary)])
    inputs = json.loads(json.dumps(outputs))
    return decode_inputs(inputs, b"".join(blobs), spec, max_items=64)["x"]


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if expected.dtype.kind == "O":
        assert got.tolist() == expected.tolist()
    else:
        np.testing.assert_array_equal(got, expected)  # NaN equals NaN here


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_type_goes_both_ways(dtype, binary):
    array = sample(dtype)
    assert_same(round_trip(array, dtype, binary), array)


def test_outputs_are_json_data_or_binary_as_asked():
    values = {"labels": np.array([7, 2]), "probabilities": np.full((2, 10), 0.5, np.float32)}
    outputs, blobs = encode_outputs(values, [(LABELS, False), (PROBABILITIES, True)])
    assert outputs == [
        {"name": "labels", "datatype": "INT64", "shape": [2], "data": [7, 2]},
        {"name": "probabilities", "datatype": "FP32", "shape": [2, 10], "parameters": {"binary_data_size": 80}},
    ]
    assert blobs == [np.full(20, 0.5, "<f4").tobytes()]


def test_bytes_outputs_are_strings_in_json_and_length_prefixed_in_binary():
    tensor = TensorSpec("text", "string", (-1,))
    values = {"text": [b"ok", "é".encode()]}
    outputs, blobs = encode_outputs(values, [(tensor, False)])
    assert outputs[0]["data"] == ["ok", "é"] and not blobs
    outputs, blobs = encode_outputs(values, [(tensor, True)])
    assert blobs == [struct.pack("<I", 2) + b"ok" + struct.pack("<I", 2) + "é".encode()]


def test_bytes_output_that_is_not_utf8_goes_binary_rather_than_changed():
    tensor = TensorSpec("raw", "string", (-1,))
    outputs, blobs = encode_outputs({"raw": [b"\xff\xfe"]}, [(tensor, False)])
    assert outputs[0]["parameters"] == {"binary_data_size": 6} and "data" not in outputs[0]
    assert blobs == [struct.pack("<I", 2) + b"\xff\xfe"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_arrays_go_both_ways(data):
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    if dtype == "string":
        cells = data.draw(st.lists(st.binary(max_size=8), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        array = np.array(cells + [None], dtype=object)[:-1].reshape(shape)
    else:
        array = data.draw(hnp.arrays(NUMPY[dtype], shape))
    assert_same(round_trip(array, dtype, data.draw(st.booleans())), array)


def images(data: object, shape: list[int], datatype: str = "FP32", **extra: object) -> list[dict]:
    return [{"name": "images", "datatype": datatype, "shape": shape, "data": data, **extra}]


def test_images_flat_or_nested_and_28x28_for_an_input_of_784():
    pixels = np.arange(2 * 784, dtype=np.float32) % 256
    for shape, data in (([2, 784], pixels.tolist()), ([2, 784], pixels.reshape(2, 784).tolist()),
                        ([2, 28, 28], pixels.reshape(2, 28, 28).tolist()), ([2, 28, 28], pixels.tolist())):
        got = decode_inputs(images(data, shape), b"", MNIST, max_items=8)["images"]
        assert got.shape == (2, 784) and got.dtype == np.float32 and (got.ravel() == pixels).all()


def test_binary_inputs_follow_the_json_in_the_order_listed():
    inputs = [{"name": "b", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 10}},
              {"name": "a", "datatype": "INT32", "shape": [2, 2], "parameters": {"binary_data_size": 16}}]
    binary = struct.pack("<I", 1) + b"x" + struct.pack("<I", 1) + b"y" + np.arange(4, dtype="<i4").tobytes()
    got = decode_inputs(inputs, binary, PAIR, max_items=8)
    assert got["b"].tolist() == [b"x", b"y"] and got["a"].tolist() == [[0, 1], [2, 3]]


def test_nan_and_infinities_are_floats():
    got = decode_inputs(images([float("nan"), float("inf")] * 392, [1, 784]), b"", MNIST, max_items=1)["images"]
    assert np.isnan(got[0, 0]) and np.isinf(got[0, 1])


@pytest.mark.parametrize(("model", "sent"), [("float32", "UINT8"), ("float32", "INT16"), ("float64", "INT32"),
                                             ("float64", "FP32"), ("int64", "UINT32"), ("int32", "INT8")])
def test_a_narrower_number_type_that_converts_exactly_is_taken_as_sent(model, sent):
    """UINT8 pixels for an FP32 input: kept narrow (the worker casts), a quarter of the message."""
    spec = one(model, (-1, 3))
    values = [[1, 2, 3], [4, 5, 127]]
    narrow = NUMPY[BY_KSERVE[sent].name]
    got = decode_inputs([{"name": "x", "datatype": sent, "shape": [2, 3], "data": values}], b"", spec,
                        max_items=2)["x"]
    assert got.dtype == narrow and got.tolist() == values
    wire = np.array(values, narrow.newbyteorder("<")).tobytes()
    binary = [{"name": "x", "datatype": sent, "shape": [2, 3], "parameters": {"binary_data_size": len(wire)}}]
    got = decode_inputs(binary, wire, spec, max_items=2)["x"]
    assert got.dtype == narrow and got.tolist() == values


@pytest.mark.parametrize(("model", "sent"), [("int32", "UINT32"), ("uint8", "INT8"), ("float16", "INT16"),
                                             ("int64", "FP32"), ("string", "UINT8"), ("bool", "UINT8")])
def test_a_type_that_does_not_convert_exactly_is_refused(model, sent):
    spec = one(model, (-1, 1))
    message = refused([{"name": "x", "datatype": sent, "shape": [1, 1], "data": [1]}], spec)
    assert message.startswith(f"input 'x': datatype {sent!r}; the model takes {spec.inputs[0].type.kserve} [-1, 1]")


def test_a_narrower_type_is_still_checked_against_its_own_range():
    message = refused(images([256] + ROW[1:], [1, 784], "UINT8"))
    assert message == "input 'images': 256 at [0] does not fit UINT8 (0..255)"


def test_whole_floats_are_integers():
    got = decode_inputs([{"name": "x", "datatype": "INT32", "shape": [1, 1], "data": [3.0]}], b"",
                        one("int32", (-1, 1)), max_items=1)["x"]
    assert got.tolist() == [[3]] and got.dtype == np.int32


def refused(inputs: object, spec: ModelSpec = MNIST, binary: bytes = b"", max_items: int = 8) -> str:
    with pytest.raises(ApiError) as caught:
        decode_inputs(inputs, binary, spec, max_items=max_items)
    assert caught.value.status == 400
    return caught.value.message


ROW = [0.0] * 784


@pytest.mark.parametrize(("inputs", "message"), [
    ({"name": "images"}, "'inputs' must be a list of tensors, one for each of the model's inputs: "
                         "'images' (FP32 [-1, 784])"),
    (images(ROW, [1, 784]) + [{"name": "pixels"}],
     "no input 'pixels'; the model's inputs are 'images' (FP32 [-1, 784])"),
    (images(ROW, [1, 784]) * 2, "input 'images' is sent twice"),
    ([], "no input 'images' (FP32 [-1, 784]) in the request; the model's inputs are 'images' (FP32 [-1, 784]), "
         "all of them needed"),
    (images(ROW, [1, 784], "FP64"), "input 'images': datatype 'FP64'; the model takes FP32 [-1, 784] (or a narrower "
                                    "number type that converts to it exactly)"),
    (images(ROW, [1, 784], "INT64"), "input 'images': datatype 'INT64'; the model takes FP32 [-1, 784]"),
    (images(ROW, [1, 784], "BOOL"), "input 'images': datatype 'BOOL'; the model takes FP32 [-1, 784]"),
    (images(ROW, [1, 784], "BYTES"), "input 'images': datatype 'BYTES'; the model takes FP32 [-1, 784]"),
    (images(ROW, [1, 784], "fp32"), "input 'images': datatype 'fp32'; the model takes FP32 [-1, 784]"),
    (images(ROW, "784"), "input 'images': 'shape' must be a list of sizes (whole numbers, 0 or more), got '784'"),
    (images(ROW, [1, -784]),
     "input 'images': 'shape' must be a list of sizes (whole numbers, 0 or more), got [1, -784]"),
    (images(ROW, [784]), "input 'images': shape [784]; the model takes FP32 [-1, 784] (-1: any size; "
                         "the first dimension is the batch)"),
    (images(ROW, [1, 27, 29]), "input 'images': shape [1, 27, 29]; the model takes FP32 [-1, 784]"),
    (images([], [0, 784]), "input 'images': no items (shape [0, 784])"),
    (images(ROW * 9, [9, 784]), "input 'images': 9 items, more than the 8 allowed in one request"),
    (images(ROW[1:], [1, 784]), "input 'images': shape [1, 784] holds 784 values, its 'data' 783"),
    (images([ROW, ROW[1:]], [2, 784]), "input 'images': lists of different lengths at the same depth"),
    (images(["0"] * 784, [1, 784]), "input 'images': \"0\" at [0] is not a number (FP32)"),
    (images([None] * 784, [1, 784]), "input 'images': null at [0] is not a number (FP32)"),
    (images([True] * 784, [1, 784]), "input 'images': true at [0] is not a number (FP32)"),
    (images(ROW[1:] + [1e39], [1, 784]), "input 'images': 1e+39 at [783] is beyond FP32's range (±3.40282e+38)"),
    (images(ROW[1:] + [10 ** 400], [1, 784]), "input 'images': 1000000000000000000000000000000000000... at [783] "
                                              "is beyond FP32's range"),
    ([{"name": "images", "datatype": "FP32", "shape": [1, 784]}], "input 'images': no 'data', and no binary_data_size"),
    (images(ROW, [1, 784], parameters=[]), "input 'images': 'parameters' must be an object"),
    (images(ROW, [1, 784], parameters={"binary_data_size": 3136}),
     "input 'images': both 'data' and a binary_data_size; send its values one way"),
])
def test_what_the_request_gets_wrong_is_named(inputs, message):
    assert message in refused(inputs)


@pytest.mark.parametrize(("dtype", "value", "message"), [
    ("uint8", 300, "300 at [0, 0] does not fit UINT8 (0..255)"),
    ("uint8", -1, "-1 at [0, 0] does not fit UINT8 (0..255)"),
    ("int8", 128, "128 at [0, 0] does not fit INT8 (-128..127)"),
    ("uint64", 2 ** 64, "18446744073709551616 at [0, 0] does not fit UINT64 (0..18446744073709551615)"),
    ("int32", 1.5, "1.5 at [0, 0] is not a whole number (INT32)"),
    ("int64", float("inf"), "Infinity at [0, 0] is not a whole number (INT64)"),
    ("int16", "3", '"3" at [0, 0] is not a whole number (INT16)'),
    ("int16", True, "true at [0, 0] is not a whole number (INT16)"),
    ("bool", 1, "1 at [0, 0] is not true or false (BOOL)"),
    ("bool", "true", '"true" at [0, 0] is not true or false (BOOL)'),
    ("float16", 70000, "70000 at [0, 0] is beyond FP16's range (±65504)"),
    ("float64", {"x": 1}, '{"x": 1} at [0, 0] is not a number (FP64)'),
    ("string", 5, "5 at [0, 0] is not a string (BYTES)"),
    ("string", {"b64": "eA=="}, '{"b64": "eA=="} at [0, 0] is not a string (BYTES)'),
    ("string", "\ud800", '"\\ud800" at [0, 0] is not valid Unicode'),
])
def test_values_that_do_not_fit_the_type_are_refused_where_they_are(dtype, value, message):
    spec = one(dtype, (-1, 2))
    inputs = [{"name": "x", "datatype": spec.inputs[0].type.kserve, "shape": [1, 2], "data": [[value, value]]}]
    assert refused(inputs, spec) == f"input 'x': {message}"


def test_inputs_of_different_batch_sizes():
    inputs = [{"name": "a", "datatype": "INT32", "shape": [2, 2], "data": [1, 2, 3, 4]},
              {"name": "b", "datatype": "BYTES", "shape": [1], "data": ["x"]}]
    assert refused(inputs, PAIR) == ("the request: inputs of different batch sizes ('a': 2, 'b': 1); every input "
                                     "has one entry per item")


def binary_images(size: object, count: int = 1) -> list[dict]:
    return [{"name": "images", "datatype": "FP32", "shape": [count, 784], "parameters": {"binary_data_size": size}}]


@pytest.mark.parametrize(("inputs", "binary", "message"), [
    (binary_images(3136), b"\0" * 3000, "input 'images': binary_data_size 3136, but 3000 of the 3000 bytes of "
                                        "binary data after the JSON are left for it"),
    (binary_images(3000), b"\0" * 3000, "input 'images': shape [1, 784] of FP32 is 3136 bytes of binary data "
                                        "(4 a value); binary_data_size says 3000"),
    (binary_images(3136), b"\0" * 3137, "3137 bytes of binary data follow the JSON, but the inputs' "
                                        "binary_data_size add up to 3136"),
    (images(ROW, [1, 784]), b"\0", "1 bytes of binary data follow the JSON, but no input has a binary_data_size"),
    (binary_images("3136"), b"\0" * 3136, "input 'images': binary_data_size must be a number of bytes, got '3136'"),
    (binary_images(True), b"\0", "input 'images': binary_data_size must be a number of bytes, got True"),
])
def test_binary_data_that_does_not_add_up(inputs, binary, message):
    assert refused(inputs, binary=binary) == message


STRINGS = one("string", (-1,))


@pytest.mark.parametrize(("binary", "message"), [
    (struct.pack("<I", 1) + b"x" + b"\0\0", "BYTES binary data holds 1 strings (each a 4-byte little-endian length, "
                                            "then its bytes); its shape needs 2"),
    (struct.pack("<I", 1) + b"x" + struct.pack("<I", 9) + b"abc", "BYTES binary data ends inside string 1 "
                                                                  "(9 bytes long)"),
    ((struct.pack("<I", 1) + b"x") * 3, "BYTES binary data holds more than the 2 strings of its shape "
                                        "(5 bytes left over)"),
])
def test_bytes_binary_data_that_is_not_length_prefixed_strings(binary, message):
    inputs = [{"name": "x", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(binary)}}]
    assert refused(inputs, STRINGS, binary) == f"input 'x': {message}"


def test_bool_binary_data_is_zero_or_one():
    inputs = [{"name": "x", "datatype": "BOOL", "shape": [1, 3], "parameters": {"binary_data_size": 3}}]
    assert refused(inputs, one("bool", (-1, 3)), b"\x01\x00\x02") == ("input 'x': BOOL binary data is one byte a "
                                                                      "value, 0 or 1; byte 2 is 2")


def test_an_item_shape_with_any_size_is_not_reshaped():
    spec = one("float32", (-1, -1, 3))
    got = decode_inputs([{"name": "x", "datatype": "FP32", "shape": [1, 2, 3], "data": [0] * 6}], b"", spec,
                        max_items=1)["x"]
    assert got.shape == (1, 2, 3)
    assert "shape [1, 6]; the model takes FP32 [-1, -1, 3]" in refused(
        [{"name": "x", "datatype": "FP32", "shape": [1, 6], "data": [0] * 6}], spec)


def test_all_outputs_by_default_each_as_the_request_says():
    assert requested_outputs({}, MNIST) == [(LABELS, False), (PROBABILITIES, False)]
    assert requested_outputs({"parameters": {"binary_data_output": True}, "outputs": []}, MNIST) == [
        (LABELS, True), (PROBABILITIES, True)]
    body = {"parameters": {"binary_data_output": True},
            "outputs": [{"name": "probabilities"}, {"name": "labels", "parameters": {"binary_data": False}}]}
    assert requested_outputs(body, MNIST) == [(PROBABILITIES, True), (LABELS, False)]


@pytest.mark.parametrize(("body", "message"), [
    ({"outputs": [{"name": "logits"}]}, "model 'mnist' version 3 has no output 'logits'; it has 'labels' "
                                        "(INT64 [-1]), 'probabilities' (FP32 [-1, 10])"),
    ({"outputs": [{"name": "labels"}, {"name": "labels"}]}, "output 'labels' is asked for twice"),
    ({"outputs": {"name": "labels"}}, "'outputs' must be a list of objects, each naming an output"),
    ({"parameters": {"binary_data_output": "yes"}}, "binary_data_output must be true or false, got 'yes'"),
    ({"outputs": [{"name": "labels", "parameters": {"binary_data": 1}}]}, "binary_data must be true or false, got 1"),
    ({"parameters": "binary"}, "the request: 'parameters' must be an object"),
])
def test_outputs_asked_for_wrongly(body, message):
    with pytest.raises(ApiError) as caught:
        requested_outputs(body, MNIST)
    assert caught.value.status == 400 and caught.value.message == message
