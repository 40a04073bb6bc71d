"""TF Serving's tensor path over both its carriers: ``Predict`` over gRPC
(``tensorflow.serving.PredictionService``, a ``tensor_content`` TensorProto, what
``tf.make_tensor_proto`` writes) against ``POST /v1/models/<name>:predict`` (row format JSON), same
model, same run, alternating at each concurrency.

As ``bench.tensors`` does it: h2load for both (``--h1`` for REST, h2c for gRPC), each client one
connection with one request in flight, and a gRPC call counted answered by the bytes that came back
(every answer the same length, checked with a real call before and after). ``python -m
bench.tfserving`` runs it alone.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import grpc
import numpy as np

from bench.load import SyncPoint
from bench.tensors import GRPC_HEADERS, Carrier, standalone, sweep_carriers

REST = "tf serving rest"
GRPC = "tf serving grpc"
METHOD = "/tensorflow.serving.PredictionService/Predict"


@dataclasses.dataclass(frozen=True)
class Bodies:
    pixels: np.ndarray
    rest_body: Path
    grpc_request: bytes
    grpc_body: Path
    label: int


def bodies(image: np.ndarray, label: int, model: str, work: Path) -> Bodies:
    from api.grpc.tfserving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from api.grpc.tfserving.protos.tensorflow_serving.apis import predict_pb2

    pixels = image.reshape(1, 784).astype(np.float32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["inputdata"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, tensor_content=pixels.tobytes(), tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in pixels.shape])))
    message = request.SerializeToString()
    work.mkdir(parents=True, exist_ok=True)
    (work / "predict.json").write_text(json.dumps({"instances": pixels.tolist()}))
    (work / "predict.bin").write_bytes(b"\0" + struct.pack(">I", len(message)) + message)  # gRPC's framing
    return Bodies(pixels, work / "predict.json", message, work / "predict.bin", label)


def answer_bytes(address: str, body: Bodies) -> int:
    """The framed size of one ``Predict`` answer, asked for once and its label checked."""
    from api.grpc.tfserving.protos.tensorflow_serving.apis import predict_pb2

    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD, request_serializer=None,
                                   response_deserializer=predict_pb2.PredictResponse.FromString)
        response = call(body.grpc_request, timeout=30)
    labels = np.frombuffer(response.outputs["labels"].tensor_content, "<i8").tolist()
    if labels != [body.label]:
        raise RuntimeError(f"Predict answered {labels} for an image of {body.label}")
    return 5 + response.ByteSize()


def sweep(http_base: str, grpc_address: str, model: str, body: Bodies, clients: list[int], seconds: float,
          work: Path, roles=None) -> dict[str, list[SyncPoint]]:
    answer = answer_bytes(grpc_address, body)
    carriers = [Carrier(REST, f"{http_base}/v1/models/{model}:predict", body.rest_body,
                        ["content-type: application/json"], True),
                Carrier(GRPC, f"http://{grpc_address}{METHOD}", body.grpc_body, GRPC_HEADERS, False)]
    results = sweep_carriers(carriers, clients, seconds, work, roles, grpc_answer_bytes=answer)
    answer_bytes(grpc_address, body)  # and still right after the load
    return results


def main(argv: list[str] | None = None) -> int:
    return standalone(argv, program="bench.tfserving", description=__doc__.splitlines()[0], clients="1,16",
                      make_bodies=bodies, run_sweep=sweep)


if __name__ == "__main__":
    raise SystemExit(main())
