"""A worker process's heartbeat: a thread that says every interval that the process is alive.

Each beat first looks for a new model version (so a new version is picked up within one interval),
then publishes what the process serves and its counters for the API's /readyz, /models and
/metrics. A beat that cannot reach Redis is logged and the next one tries again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import redis

from inferq.workers import WorkerRegistry, WorkerStatus
from worker.metrics import WorkerMetrics
from worker.model_holder import ModelHolder

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, registry: WorkerRegistry, holder: ModelHolder, metrics: WorkerMetrics,
                 interval_s: float) -> None:
        self._registry = registry
        self._holder = holder
        self._metrics = metrics
        self._interval = interval_s
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._started_at = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inferq-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)
        try:
            self._registry.remove(self.name)
        except redis.RedisError as exc:
            log.warning("could not deregister %s: %s", self.name, exc)

    def beat(self) -> None:
        model = self._holder.current
        self._registry.publish(WorkerStatus(
            name=self.name,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at,
            model_version=model.version if model else None,
            spec=model.spec if model else None,
            batches=self._metrics.batches,
            images=self._metrics.images,
            recent_batch_sizes=list(self._metrics.recent_batch_sizes),
            metrics=self._metrics.snapshot(),
        ))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._holder.refresh()
                self.beat()
            except redis.RedisError as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:
                log.exception("heartbeat failed")
