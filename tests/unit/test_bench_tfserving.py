"""bench.tfserving's bodies are the requests TF Serving's clients send, and its gRPC answers are
counted by the bytes that came back: held against the stand-in's gRPC front end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from api.grpc.tfserving.protos.tensorflow_serving.apis import predict_pb2
from bench import tensors, tfserving
from tests.protocols.conftest import served_over_grpc


def test_the_bodies_are_one_image_each_way(tmp_path):
    body = tfserving.bodies(np.full((28, 28), 3, np.uint8), 7, "mnist", tmp_path)
    framed = body.grpc_body.read_bytes()
    assert framed[0] == 0 and int.from_bytes(framed[1:5], "big") == len(framed) - 5
    request = predict_pb2.PredictRequest.FromString(framed[5:])
    assert request.model_spec.name == "mnist"
    assert [dim.size for dim in request.inputs["inputdata"].tensor_shape.dim] == [1, 784]
    np.testing.assert_array_equal(np.frombuffer(request.inputs["inputdata"].tensor_content, np.float32),
                                  np.full(784, 3.0))
    assert json.loads(body.rest_body.read_text()) == {"instances": [[3.0] * 784]}


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is not installed")
def test_answers_are_counted_and_refusals_are_not(make_app, serve, tmp_path):
    serve()
    app, _ = make_app()
    image = np.zeros((28, 28), np.uint8)
    with served_over_grpc(app) as address:
        good = tfserving.bodies(image, 0, "mnist", tmp_path / "good")  # the stand-in's label for black: 0
        answer = tfserving.answer_bytes(address, good)
        url = f"http://{address}{tfserving.METHOD}"
        headers = ["content-type: application/grpc", "te: trailers"]
        done, data, _ = tensors.h2load(url, 2, 1, good.grpc_body, headers, h1=False, log=tmp_path / "a.log")
        assert done and data == answer * len(done)
        unknown = tfserving.bodies(image, 0, "fashion", tmp_path / "bad")  # NOT_FOUND: an HTTP 200, no message
        done, data, _ = tensors.h2load(url, 2, 1, unknown.grpc_body, headers, h1=False, log=tmp_path / "b.log")
        assert done and data == 0
