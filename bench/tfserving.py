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

import argparse
import dataclasses
import json
import struct
import tempfile
from pathlib import Path

import grpc
import numpy as np

from bench.cpu import CpuMeter
from bench.load import SyncPoint
from bench.tensors import _point, h2load

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
    carriers = ((REST, f"{http_base}/v1/models/{model}:predict", body.rest_body, ["content-type: application/json"],
                 True),
                (GRPC, f"http://{grpc_address}{METHOD}", body.grpc_body,
                 ["content-type: application/grpc", "te: trailers"], False))
    for _, url, data, headers, h1 in carriers:  # warm up: connections, the first model calls
        h2load(url, 4, 1, data, headers, h1=h1, log=work / "warm.log")
    results: dict[str, list[SyncPoint]] = {REST: [], GRPC: []}
    for concurrency in clients:
        for name, url, data, headers, h1 in carriers:
            with CpuMeter(roles or (lambda: {})) as meter:
                done, data_bytes, ran = h2load(url, concurrency, seconds, data, headers, h1=h1,
                                               log=work / f"{name.split()[-1]}-{concurrency}.log")
            answered = sum(status == 200 for status, _ in done) if h1 else min(len(done), data_bytes // answer)
            point = _point(concurrency, done, answered, ran)
            cores = meter.cores.get("api" if h1 else "grpc")
            if cores is not None and point.rps:
                point.cpu_ms_per_request = round(1000 * cores / point.rps, 3)
            results[name].append(point)
    answer_bytes(grpc_address, body)  # and still right after the load
    return results


def main(argv: list[str] | None = None) -> int:
    from bench import models, systems
    from bench.bodies import test_digits
    from bench.tensors import table
    from inferq.settings import Settings
    from trainer import mnist_files

    parser = argparse.ArgumentParser(prog="python -m bench.tfserving", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="as `python -m bench --model` (default: the seed MLP)")
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    data_dir = mnist_files.locate(Path(settings.mnist_data_dir))
    work = Path(tempfile.mkdtemp(prefix="inferq-bench-tfserving-"))
    (model,) = models.resolve(args.model, quick=True, settings=settings, data_dir=data_dir, work=work)
    images, labels = test_digits(data_dir)
    body = bodies(images[0], int(labels[0]), systems.SERVED_MODEL, work)
    with systems.redis_server(work) as redis_url, \
            systems.inferq_processes(redis_url, model.model_dir, grpc=True) as running:
        results = sweep(running.base_url, running.grpc_address, systems.SERVED_MODEL, body,
                        [int(n) for n in args.clients.split(",")], args.seconds, work, running.pids)
    print(f"== {model.name}: {model.origin}")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
