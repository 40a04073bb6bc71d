"""``grpc.health.v1`` health checking (grpcio-health-checking), what Kubernetes' gRPC probes ask.

Two kinds, as the HTTP API's two probes: ``""`` (the server) is SERVING while the process serves,
as ``/healthz``; each inference service (``inference.GRPCInferenceService``, and TF Serving's
``tensorflow.serving.PredictionService`` and ``ModelService``) is SERVING while Redis answers, as
``/readyz?workers=optional`` (workers may be scaled from zero: the front end must take work before
any runs), else NOT_SERVING. A thread reads it again every heartbeat interval; ``Watch`` callers
hear each change.
"""

from __future__ import annotations

import logging
import threading

import redis
from flask import Flask
from grpc_health.v1 import health, health_pb2

from api.runtime import runtime

log = logging.getLogger(__name__)

SERVER = ""
INFERENCE = "inference.GRPCInferenceService"
#: The services that take work through the queue: ready while Redis answers.
QUEUED = (INFERENCE, "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")


class Health:
    def __init__(self, app: Flask, interval_s: float) -> None:
        self.servicer = health.HealthServicer()
        self._app = app
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.servicer.set(SERVER, health_pb2.HealthCheckResponse.SERVING)
        self.check()
        self._thread = threading.Thread(target=self._watch, name="grpc-health", daemon=True)
        self._thread.start()

    def check(self) -> bool:
        """Read readiness now, and say it."""
        with self._app.app_context():
            try:
                runtime().models.all(fresh=True)
                ready = True
            except redis.RedisError as error:
                log.info("not ready: Redis does not answer (%s)", error)
                ready = False
        for service in QUEUED:
            self.servicer.set(service, health_pb2.HealthCheckResponse.SERVING if ready
                              else health_pb2.HealthCheckResponse.NOT_SERVING)
        return ready

    def _watch(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.check()

    def stop(self) -> None:
        """Everything NOT_SERVING (a stopping server takes no new work), and the thread ended."""
        self._stop.set()
        self.servicer.enter_graceful_shutdown()
        self._thread.join(self._interval_s + 5)
