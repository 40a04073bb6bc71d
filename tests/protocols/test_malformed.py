"""Malformed requests to both protocols: a 4xx JSON error that names the problem, nothing queued."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from inferq.model_spec import ANY, ModelSpec, TensorSpec
from tests.protocols.helpers import digits

PREDICT = "/v1/models/mnist:predict"
INFER = "/v2/models/mnist/infer"
BLACK = [0] * 784


def infer_body(**fields) -> dict:
    return {"inputs": [{"name": "inputdata", "shape": [1, 784], "datatype": "FP32", "data": BLACK, **fields}]}


def binary_body(payload: bytes, *, size: int | None = None, datatype: str = "FP32", json_size: int | None = None,
                shape: list[int] | None = None, name: str = "inputdata", **request) -> tuple[bytes, dict]:
    parameters = {"binary_data_size": len(payload) if size is None else size}
    header = json.dumps({"inputs": [{"name": name, "shape": shape or [1, 784], "datatype": datatype,
                                     "parameters": parameters}], **request}).encode()
    length = len(header) if json_size is None else json_size
    return header + payload, {"Inference-Header-Content-Length": str(length)}


def raw(body: dict) -> bytes:
    return json.dumps(body).encode()


CASES = {
    # TF Serving
    "tf: not JSON": (PREDICT, b"instances=1", {}, "the predict request is not JSON"),
    "tf: not an object": (PREDICT, b"[1, 2]", {}, "the predict request must be a JSON object"),
    "tf: nested past the parser": (PREDICT, b"[" * 100_000, {}, "not JSON"),
    "tf: neither format": (PREDICT, raw({"instance": [BLACK]}), {},
                           "send either 'instances' (row format) or 'inputs' (column format), one of them"),
    "tf: both formats": (PREDICT, raw({"instances": [BLACK], "inputs": [BLACK]}), {}, "either 'instances'"),
    "tf: instances not a list": (PREDICT, raw({"instances": 5}), {}, "'instances' must be a list of instances"),
    "tf: no instances": (PREDICT, raw({"instances": []}), {}, "'instances' must be a list of instances, one per "
                                                             "item, at least one"),
    "tf: 783 pixels": (PREDICT, raw({"instances": [BLACK[:-1]]}), {},
                       "input 'inputdata': shape [1, 783]; the model takes float32 [-1, 784]"),
    "tf: 27x28": (PREDICT, raw({"instances": [[[0] * 28] * 27]}), {}, "shape [1, 27, 28]; the model takes float32"),
    "tf: ragged": (PREDICT, raw({"instances": [BLACK, BLACK[:-1]]}), {}, "lists of different lengths"),
    "tf: beyond float32": (PREDICT, raw({"instances": [BLACK[:-1] + [1e39]]}), {},
                           "input 'inputdata': 1e+39 at [0, 783] is beyond float32's range"),
    "tf: beyond any float": (PREDICT, raw({"inputs": [BLACK[:-1] + [10**400]]}), {}, "at [0, 783] is beyond float32's"),
    "tf: text": (PREDICT, raw({"instances": [["0"] * 784]}), {}, "\"0\" at [0, 0] is not a number (float32)"),
    "tf: base64 for a number": (PREDICT, raw({"instances": [[{"b64": "AA=="}] * 784]}), {},
                                "{\"b64\": \"AA==\"} at [0, 0] is not a number (float32)"),
    "tf: booleans": (PREDICT, raw({"instances": [[False] * 784]}), {}, "false at [0, 0] is not a number"),
    "tf: nulls": (PREDICT, raw({"instances": [[None] * 784]}), {}, "null at [0, 0] is not a number"),
    "tf: unknown input name": (PREDICT, raw({"instances": [{"pixels": BLACK}]}), {},
                               "instance 0: no input 'pixels'; the model's inputs are 'inputdata' (float32 [-1, 784])"),
    "tf: one instance without its batch": (PREDICT, raw({"inputs": BLACK}), {}, "shape [784]"),
    "tf: other signature": (PREDICT, raw({"signature_name": "classify", "instances": [BLACK]}), {},
                            "no signature 'classify': the model has 'serving_default'"),
    "tf: too many": (PREDICT, raw({"instances": [BLACK] * 3}), {}, "3 items, more than the 2 allowed"),
    "tf: columns of no rows": (PREDICT, raw({"inputs": []}), {}, "input 'inputdata': no items (shape [0])"),
    "tf: a named column of no rows": (PREDICT, raw({"inputs": {"inputdata": []}}), {}, "no items (shape [0])"),
    "tf: no examples": ("/v1/models/mnist:classify", raw({"examples": []}), {},
                        "'examples' must be a list of examples (objects of features), one per item, at least one"),
    # KServe v2
    "v2: not JSON": (INFER, b"{", {}, "the inference request is not JSON"),
    "v2: no inputs": (INFER, raw({}), {}, "'inputs' must be a list of tensors, one for each of the model's inputs: "
                                          "'inputdata' (FP32 [-1, 784])"),
    "v2: two inputs": (INFER, raw({"inputs": infer_body()["inputs"] * 2}), {}, "input 'inputdata' is sent twice"),
    "v2: unknown input": (INFER, raw(infer_body(name="x")), {}, "no input 'x'"),
    "v2: datatype": (INFER, raw(infer_body(datatype="INT32")), {},
                     "datatype 'INT32'; the model takes FP32 [-1, 784] (or a narrower number type that converts"),
    "v2: shape not sizes": (INFER, raw(infer_body(shape=[-1, 784])), {}, "'shape' must be a list of sizes"),
    "v2: shape and data disagree": (INFER, raw(infer_body(shape=[2, 784])), {}, "holds 1568 values, its 'data' 784"),
    "v2: shape not an image": (INFER, raw(infer_body(shape=[1, 10], data=[0] * 10)), {},
                               "shape [1, 10]; the model takes FP32 [-1, 784]"),
    "v2: no data": (INFER, raw({"inputs": [{"name": "inputdata", "shape": [1, 784], "datatype": "FP32"}]}), {},
                    "no 'data'"),
    "v2: ragged data": (INFER, raw(infer_body(data=[BLACK[:392], BLACK])), {}, "lists of different lengths"),
    "v2: text data": (INFER, raw(infer_body(data=["x"] * 784)), {}, "\"x\" at [0] is not a number (FP32)"),
    "v2: beyond FP32": (INFER, raw(infer_body(data=[-1e39] + BLACK[1:])), {}, "-1e+39 at [0] is beyond FP32's range"),
    "v2: UINT8 too bright": (INFER, raw(infer_body(datatype="UINT8", data=[300] + BLACK[1:])), {},
                             "300 at [0] does not fit UINT8 (0..255)"),
    "v2: UINT8 fractions": (INFER, raw(infer_body(datatype="UINT8", data=[0.5] + BLACK[1:])), {},
                            "0.5 at [0] is not a whole number (UINT8)"),
    "v2: too many": (INFER, raw(infer_body(shape=[3, 784], data=BLACK * 3)), {}, "more than the 2 allowed"),
    "v2: no rows": (INFER, raw(infer_body(shape=[0, 784], data=[])), {},
                    "input 'inputdata': no items (shape [0, 784])"),
    "v2: no rows of binary data": (INFER, *binary_body(b"", shape=[0, 784]), "no items (shape [0, 784])"),
    "v2: parameters not an object": (INFER, raw(infer_body(parameters=[1])), {}, "'parameters' must be an object"),
    "v2: unknown output": (INFER, raw({**infer_body(), "outputs": [{"name": "logits"}]}), {}, "no output 'logits'"),
    "v2: outputs not a list": (INFER, raw({**infer_body(), "outputs": "labels"}), {}, "'outputs' must be a list"),
    "v2: binary_data not a flag": (INFER, raw({**infer_body(), "outputs": [{"name": "labels",
                                                                          "parameters": {"binary_data": "yes"}}]}),
                                   {}, "binary_data must be true or false"),
    "v2: binary too short": (INFER, *binary_body(b"\0" * 783 * 4), "is 3136 bytes"),
    "v2: binary size disagrees": (INFER, *binary_body(b"\0" * 784 * 4, size=12), "binary_data_size says 12"),
    "v2: binary of another type's size": (INFER, *binary_body(b"\0" * 784 * 4, datatype="UINT8"),
                                          "shape [1, 784] of UINT8 is 784 bytes of binary data (1 a value); "
                                          "binary_data_size says 3136"),
    "v2: header longer than the body": (INFER, *binary_body(b"", json_size=10**6),
                                        "Inference-Header-Content-Length '1000000'"),
    "v2: header length not a number": (INFER, raw(infer_body()), {"Inference-Header-Content-Length": "ten"},
                                       "Inference-Header-Content-Length 'ten'"),
    "v2: binary nobody claims": (INFER, raw(infer_body()) + b"\0\0", {"Inference-Header-Content-Length":
                                                                       str(len(raw(infer_body())))},
                                 "2 bytes of binary data follow the JSON"),
}


@pytest.mark.parametrize("path, body, headers, message", CASES.values(), ids=CASES.keys())
def test_a_malformed_request_is_a_4xx_json_error(make_app, serve, path, body, headers, message):
    serve()
    app, worker = make_app(max_images_per_request=2)
    response = app.test_client().post(path, data=body, headers=headers)
    assert 400 <= response.status_code < 500
    assert response.is_json
    assert message in response.get_json()["error"]
    assert worker.sent == []


def test_a_well_formed_request_passes_the_same_checks(make_app, serve):
    """The cases above fail for what they change, not for what they share."""
    serve()
    app, _ = make_app(max_images_per_request=2)
    client = app.test_client()
    assert client.post(PREDICT, data=raw({"instances": [BLACK]})).status_code == 200
    assert client.post(INFER, data=raw(infer_body())).status_code == 200
    assert client.post(INFER, data=binary_body(np.zeros(784, "<f4").tobytes())[0],
                       headers=binary_body(np.zeros(784, "<f4").tobytes())[1]).status_code == 200
    assert client.post(PREDICT, data=raw({"instances": [digits(1)[0].tolist()]})).status_code == 200


#: Values of the input's own type that are no pixels: the protocols carry tensors of the model's type, and
#: inferq passes them on as they are (no clipping, no rounding): whether they mean anything is the model's.
ODD_FLOATS = [256.0, -0.5, 12.4, float("nan"), float("inf"), -float("inf")]


def test_any_value_of_the_inputs_type_reaches_the_model_as_sent(make_app, serve):
    serve()
    app, worker = make_app()
    client = app.test_client()
    row = ODD_FLOATS + BLACK[len(ODD_FLOATS):]
    # json.dumps writes NaN and Infinity as JavaScript does, as TF Serving's clients send them.
    for path, body in ((PREDICT, {"instances": [row]}), (PREDICT, {"inputs": [row]}),
                       (INFER, infer_body(data=row))):
        assert client.post(path, data=json.dumps(body)).status_code == 200, path
    payload = np.array(row, "<f4").tobytes()
    body, headers = binary_body(payload)
    assert client.post(INFER, data=body, headers=headers).status_code == 200
    for job in worker.sent:
        sent = job.inputs["inputdata"]
        assert sent.dtype == np.float32 and sent.shape == (1, 784)
        np.testing.assert_array_equal(sent[0, :len(ODD_FLOATS)], np.array(ODD_FLOATS, np.float32))


#: Strings of any length in, as a tokenizer's input: a BYTES shape [N, anything] fits it.
TOKENS = ModelSpec("tokens", 1, "serving_default", (TensorSpec("tokens", "string", (ANY, ANY), "tokens:0"),),
                   (TensorSpec("score", "float32", (ANY,), "score:0"),))


@pytest.mark.parametrize("shape", [[1, 10**13], [2, 2**62]])
def test_a_declared_shape_far_past_the_data_is_a_400_before_anything_is_allocated(make_app, serve, shape):
    """A BYTES shape is only declared: its strings are read from the data, which runs out first
    (an array of the declared size was once a MemoryError, a 500)."""
    serve(spec=TOKENS, version=1)
    app, worker = make_app()
    payload = struct.pack("<I", 1) + b"x"
    body, headers = binary_body(payload, datatype="BYTES", shape=shape, name="tokens")
    response = app.test_client().post("/v2/models/tokens/infer", data=body, headers=headers)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert f"BYTES binary data holds 1 strings (each a 4-byte little-endian length, then its bytes); its shape " \
           f"needs {shape[0] * shape[1]}" in response.get_json()["error"]
    assert worker.sent == []
    good, headers = binary_body(payload, datatype="BYTES", shape=[1, 1], name="tokens")
    assert app.test_client().post("/v2/models/tokens/infer", data=good, headers=headers).status_code == 200
