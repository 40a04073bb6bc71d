"""The gRPC front end's calls in Prometheus metrics: counted by method and code, timed, and served
summed across its processes on GRPC_METRICS_PORT (``api.grpc.metrics``)."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2, service_pb2_grpc

from api.grpc.server import GrpcServer
from launcher import grpc_command
from launcher.processes import free_port
from tests.protocols.conftest import KEY, health
from tests.protocols.helpers import digits
from tests.support.processes import REPO
from tests.support.waiting import wait_for

SERVICE = "inference.GRPCInferenceService"
CALLS = "inferq_grpc_requests_total"
SECONDS = "inferq_grpc_request_seconds"


def infer_request(datatype: str = "FP32", model: str = "mnist") -> service_pb2.ModelInferRequest:
    images = digits(1).reshape(1, 784).astype(np.float32 if datatype == "FP32" else np.int32)
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name="inputdata", datatype=datatype, shape=[1, 784])
    return service_pb2.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[images.tobytes()])


def refused(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def test_each_call_is_counted_by_method_and_code_and_timed(make_app, serve):
    serve()
    app, _ = make_app(api_key="s3cret")
    server = GrpcServer(app, app.extensions["inferq"].settings, "127.0.0.1:0")
    server.start()
    key = (("authorization", "Bearer s3cret"),)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            for _ in range(3):
                assert stub.ServerLive(service_pb2.ServerLiveRequest(), metadata=key).live
            assert stub.ModelInfer(infer_request(), metadata=key).model_name == "mnist"
            assert refused(lambda: stub.ModelInfer(infer_request("INT32"), metadata=key)) == \
                grpc.StatusCode.INVALID_ARGUMENT
            assert refused(lambda: stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="fashion"),
                                                      metadata=key)) == grpc.StatusCode.NOT_FOUND
            assert refused(lambda: stub.ServerLive(service_pb2.ServerLiveRequest())) == \
                grpc.StatusCode.UNAUTHENTICATED  # refused by the key's interceptor: counted all the same
            assert refused(lambda: stub.ModelStatistics(service_pb2.ModelStatisticsRequest(), metadata=key)) == \
                grpc.StatusCode.UNIMPLEMENTED
            answers = list(stub.ModelStreamInfer(iter([infer_request(), infer_request("INT32")]), metadata=key))
            assert [bool(answer.error_message) for answer in answers] == [False, True]
            assert health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status == \
                health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop()
    registry = server.metrics.registry

    def calls(method: str, code: str) -> float | None:
        return registry.get_sample_value(CALLS, {"method": method, "code": code})

    assert calls(f"{SERVICE}/ServerLive", "OK") == 3
    assert calls(f"{SERVICE}/ServerLive", "UNAUTHENTICATED") == 1
    assert calls(f"{SERVICE}/ModelInfer", "OK") == 1
    assert calls(f"{SERVICE}/ModelInfer", "INVALID_ARGUMENT") == 1
    assert calls(f"{SERVICE}/ModelMetadata", "NOT_FOUND") == 1
    assert calls(f"{SERVICE}/ModelStatistics", "UNIMPLEMENTED") == 1
    assert calls(f"{SERVICE}/ModelStreamInfer", "OK") == 1  # one stream, its refusal an answer in it
    assert calls("grpc.health.v1.Health/Check", "OK") == 1
    assert calls(f"{SERVICE}/ModelInfer", "UNKNOWN") is None
    assert registry.get_sample_value(f"{SECONDS}_count", {"method": f"{SERVICE}/ServerLive"}) == 4
    assert registry.get_sample_value(f"{SECONDS}_count", {"method": f"{SERVICE}/ModelInfer"}) == 2
    assert 0 < registry.get_sample_value(f"{SECONDS}_sum", {"method": f"{SERVICE}/ModelInfer"}) < 10


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.mark.integration
def test_the_processes_calls_are_served_summed_on_the_metrics_port(grpc_process):
    """``python -m api.grpc``'s servers are processes of their own; the one that started them, which
    serves no call, serves their counts: what it shows is summed from the servers' files."""
    before = scrape(grpc_process.metrics_port)
    for _ in range(4):  # a channel each: the kernel may hand each to either server process
        with grpc.insecure_channel(grpc_process.address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ServerLive(service_pb2.ServerLiveRequest(), metadata=tuple(KEY.items())).live
            assert refused(lambda stub=stub: stub.ModelInfer(infer_request("INT32"), metadata=tuple(KEY.items()))) \
                == grpc.StatusCode.INVALID_ARGUMENT
            assert refused(lambda stub=stub: stub.ServerLive(service_pb2.ServerLiveRequest())) == \
                grpc.StatusCode.UNAUTHENTICATED
    after = scrape(grpc_process.metrics_port)

    def added(name: str, **labels: str) -> float:
        sample = (name, tuple(sorted(labels.items())))
        return after.get(sample, 0) - before.get(sample, 0)

    assert added(CALLS, method=f"{SERVICE}/ServerLive", code="OK") == 4
    assert added(CALLS, method=f"{SERVICE}/ServerLive", code="UNAUTHENTICATED") == 4
    assert added(CALLS, method=f"{SERVICE}/ModelInfer", code="INVALID_ARGUMENT") == 4
    assert added(CALLS, method=f"{SERVICE}/ModelInfer", code="OK") == 0
    assert added(f"{SECONDS}_count", method=f"{SERVICE}/ModelInfer") == 4
    assert added(f"{SECONDS}_bucket", method=f"{SERVICE}/ModelInfer", le="+Inf") == 4


@pytest.mark.integration
def test_one_process_serves_its_own_counts(real_worker, own_redis_url, tmp_path):
    """GRPC_PROCESSES=1: the server is the process that serves the metrics, its values in memory."""
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ, REDIS_URL=own_redis_url, QUEUE_NAME="protocols", GRPC_PORT=str(port),
               GRPC_PROCESSES="1", GRPC_METRICS_PORT=str(metrics_port))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "grpc.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(grpc_command(), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is None and health(address) == health_pb2.HealthCheckResponse.SERVING, 30,
                 "the gRPC front end")
        with grpc.insecure_channel(address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            for _ in range(2):
                assert stub.ServerLive(service_pb2.ServerLiveRequest()).live
            assert refused(lambda: stub.ModelInfer(infer_request(model="fashion"))) == grpc.StatusCode.NOT_FOUND
        scraped = scrape(metrics_port)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert scraped[(CALLS, (("code", "OK"), ("method", f"{SERVICE}/ServerLive")))] == 2
    assert scraped[(CALLS, (("code", "NOT_FOUND"), ("method", f"{SERVICE}/ModelInfer")))] == 1
