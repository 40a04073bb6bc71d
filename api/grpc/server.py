"""``python -m api.grpc``: the gRPC front end's process, beside the HTTP API's.

A grpcio server on a pool of GRPC_THREADS threads: HTTP/2 and the messages are parsed in C, and
a call to infer holds its thread while it waits for its answer through the queue, as a sync HTTP
request does under granian. (grpc.aio would hold no thread, but the queue's wait is a blocking one
that it would hand to threads all the same.) It serves:

- ``inference.GRPCInferenceService`` (``api.grpc.servicer``), on the app's runtime: the queue,
  models and settings that ``api.create_app`` builds for the HTTP API, none of its routes served;
- ``grpc.health.v1.Health`` (``api.grpc.health``);
- server reflection is not served: clients such as grpcurl take the vendored .proto files.

With API_KEY set every RPC but health checking needs it as metadata (``api.grpc.auth``); with
GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE set it serves TLS, and only TLS. On SIGTERM or SIGINT it
stops taking calls, says NOT_SERVING, and gives the calls in flight up to SYNC_TIMEOUT_S + 5 s to
be answered, as the HTTP server's graceful stop.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc
from flask import Flask
from grpc_health.v1 import health_pb2_grpc

from api.grpc.auth import ApiKeyInterceptor
from api.grpc.health import Health
from api.grpc.protos import grpc_service_pb2_grpc
from api.grpc.servicer import InferenceServicer
from api.runtime import EXTENSION
from inferq.settings import Settings

log = logging.getLogger(__name__)

#: Messages of up to MAX_REQUEST_BYTES, as over HTTP; answers are bounded by the batch, not by this.
_ANSWER_BYTES = 256 * 1024 * 1024


class GrpcServer:
    """The gRPC server on ``app``'s runtime, on ``address`` (``host:port``; port 0: any free one)."""

    def __init__(self, app: Flask, settings: Settings, address: str | None = None) -> None:
        self.settings = settings
        self.app = app
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.grpc_threads, thread_name_prefix="grpc"),
            interceptors=[ApiKeyInterceptor(settings.api_key)] if settings.api_key else [],
            options=[("grpc.max_receive_message_length", settings.max_request_bytes),
                     ("grpc.max_send_message_length", _ANSWER_BYTES),
                     # One server a port: a second process on it is an error, not a share of the calls.
                     ("grpc.so_reuseport", 0)],
        )
        grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(app), self.server)
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


def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    from api import create_app

    server = GrpcServer(create_app(settings), settings)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server.start()
    log.info("gRPC front end on port %d (%s)", server.port, "TLS" if settings.grpc_tls_cert_file else "plaintext")
    stopping.wait()
    server.stop()


def main() -> None:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(settings)
