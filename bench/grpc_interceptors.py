"""What the gRPC front end's interceptors add to a call: ``python -m bench.grpc_interceptors``.

Times, in this process and without a network, a ModelInfer behaviour that only parses its request
(a 1x784 FP32 tensor, raw), bare and behind ``api.grpc.metrics.MetricsInterceptor`` and
``api.grpc.decoding.DecodingInterceptor``, their handlers built for each call as grpcio builds them:
once with prometheus_client's values in memory (``GRPC_PROCESSES=1``), once in multiprocess files
(what ``python -m api.grpc``'s servers use); each the best of 5 rounds of 20,000 calls. Each mode
runs in a process of its own: prometheus_client picks where values live when it is first imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ROUNDS, CALLS = 5, 20_000


def _best_us(call: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            call()
        best = min(best, (time.perf_counter() - started) / CALLS)
    return best * 1e6


def _measure(mode: str) -> None:
    import grpc

    from api.grpc.decoding import DecodingInterceptor
    from api.grpc.metrics import GrpcMetrics, MetricsInterceptor
    from api.grpc.protos import grpc_service_pb2 as pb

    class Context:
        def code(self):
            return None

    request = pb.ModelInferRequest(model_name="mnist", raw_input_contents=[b"\0" * 3136], inputs=[
        pb.ModelInferRequest.InferInputTensor(name="inputdata", datatype="FP32", shape=[1, 784])])
    data, context = request.SerializeToString(), Context()
    handler = grpc.unary_unary_rpc_method_handler(lambda parsed, _: parsed,
                                                  request_deserializer=pb.ModelInferRequest.FromString)
    details = type("Details", (), {"method": "/inference.GRPCInferenceService/ModelInfer",
                                   "invocation_metadata": ()})()
    metrics, decoding = MetricsInterceptor(GrpcMetrics()), DecodingInterceptor()
    bare = _best_us(lambda: handler.unary_unary(pb.ModelInferRequest.FromString(data), context))
    intercepted = _best_us(lambda: metrics.intercept_service(
        lambda d: decoding.intercept_service(lambda _: handler, d), details).unary_unary(data, context))
    print(f"{mode}: bare {bare:.1f} us a call, intercepted {intercepted:.1f} us (+{intercepted - bare:.1f} us)")


def main() -> None:
    if len(sys.argv) == 2:
        _measure(sys.argv[1])
        return
    for mode in ("memory", "files"):
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with tempfile.TemporaryDirectory() as metrics_dir:
            if mode == "files":
                env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            subprocess.run([sys.executable, "-m", "bench.grpc_interceptors", mode], env=env, check=True)


if __name__ == "__main__":
    main()
