"""bench.tensors counts gRPC answers by the bytes that came back (h2load sees only HTTP statuses, and
a gRPC refusal is an HTTP 200): held against the stand-in's gRPC front end, answering and refusing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from bench import tensors
from tests.protocols.conftest import served_over_grpc

needs_h2load = pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is not installed")


def test_the_grpc_body_is_one_framed_request(tmp_path):
    body = tensors.bodies(np.full((28, 28), 3, np.uint8), 7, "mnist", tmp_path)
    framed = body.grpc_body.read_bytes()
    assert framed[0] == 0 and int.from_bytes(framed[1:5], "big") == len(framed) - 5
    request = service_pb2.ModelInferRequest.FromString(framed[5:])
    assert (request.model_name, request.inputs[0].datatype, list(request.inputs[0].shape)) == ("mnist", "FP32",
                                                                                                 [1, 784])
    np.testing.assert_array_equal(np.frombuffer(request.raw_input_contents[0], np.float32), np.full(784, 3.0))


@needs_h2load
def test_answers_are_counted_and_refusals_are_errors(make_app, serve, tmp_path):
    serve()
    app, worker = make_app()
    image = np.zeros((28, 28), np.uint8)
    label = int(np.zeros(784).sum() % 10)  # the stand-in's label for it (tests.support.stand_in.fake_label)
    with served_over_grpc(app) as address:
        good = tensors.bodies(image, label, "mnist", tmp_path / "good")
        answer = tensors.answer_bytes(address, "mnist", good)
        url = f"http://{address}{tensors.METHOD}"
        headers = ["content-type: application/grpc", "te: trailers"]
        done, data, seconds = tensors.h2load(url, 2, 1, good.grpc_body, headers, h1=False, log=tmp_path / "a.log")
        assert done and data == answer * len(done)
        unknown = tensors.bodies(image, label, "fashion", tmp_path / "bad")  # NOT_FOUND, an HTTP 200 all the same
        done, data, _ = tensors.h2load(url, 2, 1, unknown.grpc_body, headers, h1=False, log=tmp_path / "b.log")
        assert done and all(status == 200 for status, _ in done) and data == 0
    point = tensors._point(2, done, min(len(done), data // answer), seconds)
    assert (point.answered, point.errors) == (0, len(done))
