"""The gRPC front end's Prometheus metrics: its calls by method and status code, and their latencies.

Named as the HTTP API's (``inferq_http_requests``, ``inferq_http_request_seconds``):

- ``inferq_grpc_requests_total{method, code}``: calls answered, ``method`` the RPC's full name
  without the leading slash (``inference.GRPCInferenceService/ModelInfer``,
  ``grpc.health.v1.Health/Check``), ``code`` the status's name (``OK``, ``INVALID_ARGUMENT``, ...);
- ``inferq_grpc_request_seconds{method}``: from the call's start to its status (a stream: to its end).

The gRPC front end serves them on its own port, GRPC_METRICS_PORT (Triton's 8002), from
``python -m api.grpc``: it runs in its own container (compose) or its own container of the API pod
(Kubernetes), with none of the HTTP API's files, so the HTTP API's ``/metrics`` cannot sum them.
Its server processes write them to one multiprocess directory of its own (prometheus_client's
multiprocess mode, as the HTTP API's processes do to theirs), and the process that started them
serves their sum. A method no service has (UNIMPLEMENTED by grpcio) is not counted: its name is the
client's to choose, and would be a label without bound.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

from api.grpc.handlers import Rebuilt, behaviour_of, rebuilt
from api.metrics import LATENCY_BUCKETS

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


class GrpcMetrics:
    """The calls' counter and latency histogram, in a registry of their own (one a server)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("inferq_grpc_requests", "gRPC calls by method and status code.", ["method", "code"],
                             registry=self.registry)
        self.latency = Histogram("inferq_grpc_request_seconds", "Time from a gRPC call's start to its status, "
                                 "by method.", ["method"], buckets=LATENCY_BUCKETS, registry=self.registry)
        # Each label set's child, looked up once: ``labels()`` takes a lock and builds its key on
        # every call. Bounded as the labels are: the methods served, the status codes.
        self._counted: dict[tuple[str, grpc.StatusCode], Counter] = {}
        self._timed: dict[str, Histogram] = {}

    def record(self, method: str, code: grpc.StatusCode, started: float) -> None:
        elapsed_s = time.perf_counter() - started
        counter = self._counted.get((method, code))
        if counter is None:
            counter = self._counted[(method, code)] = self.calls.labels(method, code.name)
        timer = self._timed.get(method)
        if timer is None:
            timer = self._timed[method] = self.latency.labels(method)
        counter.inc()
        timer.observe(elapsed_s)


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts each call by method and the code it ended with, and times it.

    The outermost interceptor, so that a call the API key refuses is counted too. The code is
    ``ServicerContext.code()`` (grpcio's, what ``abort`` and ``set_code`` set; None: OK); a behaviour
    that raises anything else ends UNKNOWN, as grpcio answers it; a stream the client leaves, CANCELLED.
    """

    def __init__(self, metrics: GrpcMetrics) -> None:
        self._metrics = metrics
        self._rebuilt = Rebuilt(self._counting)

    def intercept_service(self, continuation, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return self._rebuilt(handler_call_details.method, handler)

    def _counting(self, full_method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        method = full_method.lstrip("/")
        counting = self._streaming if handler.response_streaming else self._unary
        return rebuilt(handler, counting(method, behaviour_of(handler)),
                       request_deserializer=handler.request_deserializer)

    def _unary(self, method: str, behaviour: Callable) -> Callable:
        def counted(request, context: grpc.ServicerContext):
            started = time.perf_counter()
            try:
                response = behaviour(request, context)
            except BaseException:
                self._metrics.record(method, context.code() or grpc.StatusCode.UNKNOWN, started)
                raise
            self._metrics.record(method, context.code() or grpc.StatusCode.OK, started)
            return response

        return counted

    def _streaming(self, method: str, behaviour: Callable) -> Callable:
        def counted(request, context: grpc.ServicerContext) -> Iterator:
            started = time.perf_counter()
            try:
                yield from behaviour(request, context)
            except GeneratorExit:
                self._metrics.record(method, context.code() or grpc.StatusCode.CANCELLED, started)
                raise
            except BaseException:
                self._metrics.record(method, context.code() or grpc.StatusCode.UNKNOWN, started)
                raise
            self._metrics.record(method, context.code() or grpc.StatusCode.OK, started)

        return counted


def scraped(own: CollectorRegistry | None = None) -> CollectorRegistry:
    """What the metrics port serves: in multiprocess mode the sum of every server process's files,
    else ``own`` (one server in this process)."""
    if os.environ.get(MULTIPROC_DIR) or own is None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return own


def serve_metrics(port: int, registry: CollectorRegistry):
    """Serve ``registry`` on ``port`` (all addresses, ``GET /metrics``) from a thread; the server, to
    ``shutdown()``."""
    try:
        server, _ = start_http_server(port, registry=registry)
    except OSError as exc:
        raise SystemExit(f"GRPC_METRICS_PORT={port}: cannot serve the gRPC metrics there: {exc}") from exc
    return server
