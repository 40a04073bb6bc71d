"""``python -m api.grpc``: the gRPC front end's process, beside the HTTP API's.

GRPC_PROCESSES processes (as API_PROCESSES for HTTP), each a grpcio server on a pool of
GRPC_THREADS threads, all bound to GRPC_PORT with SO_REUSEPORT: the kernel spreads connections
among them, as among granian's workers. HTTP/2 and the messages are parsed in C, but the servicer
is Python, and one process's GIL caps it (docs/grpc.md has the figures). A call to infer holds its
thread while it waits for its answer through the queue, as a sync HTTP request does under granian.
(grpc.aio would hold no thread, but the queue's wait is a blocking one that it would hand to
threads all the same.) Each process serves:

- ``inference.GRPCInferenceService`` (``api.grpc.servicer``), on the app's runtime: the queue,
  models and settings that ``api.app.create_app`` builds for the HTTP API, none of its routes served;
- TF Serving's ``tensorflow.serving.PredictionService`` and ``ModelService``
  (``api.grpc.tfserving``), on the same runtime;
- ``grpc.health.v1.Health`` (``api.grpc.health``);
- server reflection is not served: clients such as grpcurl take the vendored .proto files.

Its calls are counted by method and code (``api.grpc.metrics``), the servers' counts summed from a
multiprocess directory of their own and served on GRPC_METRICS_PORT by the process that started them.

With API_KEY set every RPC but health checking needs it as metadata (``api.grpc.auth``); with
GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE set it serves TLS, and only TLS. On SIGTERM or SIGINT it
stops taking calls, says NOT_SERVING, and gives the calls in flight up to SYNC_TIMEOUT_S + 5 s to
be answered, as the HTTP server's graceful stop.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent import futures
from pathlib import Path

import grpc
from flask import Flask
from grpc_health.v1 import health_pb2_grpc

from api.grpc.auth import ApiKeyInterceptor
from api.grpc.decoding import DecodingInterceptor
from api.grpc.health import Health
from api.grpc.metrics import MULTIPROC_DIR, GrpcMetrics, MetricsInterceptor, scraped, serve_metrics
from api.grpc.protos import grpc_service_pb2_grpc
from api.grpc.servicer import InferenceServicer
from api.grpc.tfserving.protos.tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
from api.grpc.tfserving.servicer import ModelServicer, PredictionServicer
from api.runtime import EXTENSION
from inferq.settings import Settings

log = logging.getLogger(__name__)

#: The argument that makes ``python -m api.grpc`` one of the servers sharing the port.
ONE = "--one"
#: Messages of up to MAX_REQUEST_BYTES, as over HTTP; answers are bounded by the batch, not by this.
_ANSWER_BYTES = 256 * 1024 * 1024


def tenants(app: Flask):
    """The app's tenants (``inferq.tenants``): the same keys as over HTTP."""
    return app.extensions[EXTENSION].tenants


class GrpcServer:
    """The gRPC server on ``app``'s runtime, on ``address`` (``host:port``; port 0: any free one)."""

    def __init__(self, app: Flask, settings: Settings, address: str | None = None, *,
                 reuse_port: bool = False) -> None:
        self.settings = settings
        self.app = app
        self.metrics = GrpcMetrics()
        # Metrics outermost: a call the key refuses is counted too.
        interceptors: list[grpc.ServerInterceptor] = [MetricsInterceptor(self.metrics)]
        if not tenants(app).open:
            interceptors.append(ApiKeyInterceptor(tenants(app)))
        interceptors.append(DecodingInterceptor())  # innermost: parses what the servicer is handed
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.grpc_threads, thread_name_prefix="grpc"),
            interceptors=interceptors,
            options=[("grpc.max_receive_message_length", settings.max_request_bytes),
                     ("grpc.max_send_message_length", _ANSWER_BYTES),
                     # Shared only among this server's own processes: otherwise a second server on
                     # the port is an error, not a share of the calls.
                     ("grpc.so_reuseport", int(reuse_port))],
        )
        grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(app), self.server)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(app), self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(app), self.server)
        self.health = Health(app, settings.heartbeat_interval_s)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.server)
        address = address or f"0.0.0.0:{settings.grpc_port}"
        if settings.grpc_tls_cert_file:
            credentials = grpc.ssl_server_credentials([(Path(settings.grpc_tls_key_file).read_bytes(),
                                                        Path(settings.grpc_tls_cert_file).read_bytes())])
            self.port = self.server.add_secure_port(address, credentials)
        else:
            self.port = self.server.add_insecure_port(address)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        """Take no new calls; answer those in flight (up to SYNC_TIMEOUT_S + 5 s); close the runtime."""
        self.health.stop()
        self.server.stop(self.settings.sync_timeout_s + 5).wait()
        self.app.extensions[EXTENSION].replies.close()


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT: GRPC_PROCESSES servers, each its own ``python -m api.grpc --one``
    (grpcio does not survive a fork once started, and multiprocessing's spawn leaves a helper
    process behind); a server that dies stops the rest, and the exit status says so. This process
    serves their metrics, summed, on GRPC_METRICS_PORT."""
    if settings.grpc_processes == 1:
        serve_one(settings, exported=True)
        return 0
    metrics_dir = tempfile.mkdtemp(prefix="inferq-grpc-metrics-")
    try:
        return _serve_processes(settings, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve_processes(settings: Settings, metrics_dir: str) -> int:
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    # The servers read the same environment, so the same settings; and prometheus_client, imported
    # afresh in each, keeps its values in files here.
    os.environ[MULTIPROC_DIR] = metrics_dir
    exporter = serve_metrics(settings.grpc_metrics_port, scraped()) if settings.grpc_metrics_port else None
    children = [subprocess.Popen([sys.executable, "-m", "api.grpc", ONE]) for _ in range(settings.grpc_processes)]
    while not stopping.wait(0.5):
        if any(child.poll() is not None for child in children):
            log.error("a gRPC server process exited; stopping the others")
            break
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(settings.sync_timeout_s + 10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if exporter is not None:
        exporter.shutdown()
    # Stopped by a signal: done (a server still starting may have died of it); else one died unasked.
    return 0 if stopping.is_set() else 1


def serve_one(settings: Settings, reuse_port: bool = False, exported: bool = False) -> None:
    """One server process, until SIGTERM or SIGINT (``exported``: serving its metrics too)."""
    from api.app import create_app

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server = GrpcServer(create_app(settings), settings, reuse_port=reuse_port)
    exporter = None
    if exported and settings.grpc_metrics_port:
        exporter = serve_metrics(settings.grpc_metrics_port, scraped(server.metrics.registry))
    server.start()
    log.info("gRPC front end on port %d (%s)", server.port, "TLS" if settings.grpc_tls_cert_file else "plaintext")
    stopping.wait()
    server.stop()
    if exporter is not None:
        exporter.shutdown()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if argv == [ONE]:  # one of serve()'s servers, sharing the port with the others
        serve_one(settings, reuse_port=True)
        sys.exit(0)
    if argv:
        sys.exit(f"usage: python -m api.grpc (GRPC_PROCESSES servers on GRPC_PORT); got {' '.join(argv)}")
    sys.exit(serve(settings))
