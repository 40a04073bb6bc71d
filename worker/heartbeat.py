"""A worker process's heartbeat: a thread that says every interval that the process is alive.

Each beat publishes what the process serves and its counters for the API's /readyz, /models and
/metrics. A second thread looks at the repository every interval (so a new model or version is
served, and a removed one dropped, within one interval) and beats once it has. The two are apart
because a look may load a model, which takes long under CPU load: done in the beating thread, it
let the heartbeat expire (three intervals) while the process was alive and serving, and the API saw
no worker. A beat that cannot reach Redis is logged and the next one tries again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

import redis

from inferq import messages
from inferq.catalog import ModelCatalog
from inferq.worker_registry import WorkerRegistry, WorkerStatus
from worker.loaded_models import LoadedModels
from worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, registry: WorkerRegistry, catalog: ModelCatalog, models: LoadedModels,
                 metrics: WorkerMetrics, interval_s: float, *, chores: Sequence[Callable[[], None]] = ()) -> None:
        """``chores``: what else the repository thread does once an interval, each on its own
        terms (the counters' recount)."""
        self._registry = registry
        self._catalog = catalog
        self._models = models
        self._metrics = metrics
        self._interval = interval_s
        self._chores = tuple(chores)
        self.name = self.process_name()
        self._started_at = time.time()
        self._stop = threading.Event()
        # One beat at a time: a beat that read the models before a refresh must not be published
        # after the one that read them since.
        self._beating = threading.Lock()
        self._threads = [threading.Thread(target=self._run, name="inferq-heartbeat", daemon=True),
                         threading.Thread(target=self._follow, name="inferq-repository", daemon=True)]

    @staticmethod
    def process_name() -> str:
        """This process's name among the workers: host and pid."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def start(self) -> None:
        self.beat()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._interval + 5)
        try:
            self._registry.remove(self.name)
        except redis.RedisError as exc:
            log.warning("could not deregister %s: %s", self.name, exc)

    def beat(self) -> None:
        with self._beating:
            self._beat()

    def _beat(self) -> None:
        specs = self._models.specs()
        self._catalog.remove(self._models.take_gone())
        self._catalog.publish(specs)
        self._registry.publish(WorkerStatus(
            name=self.name,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at,
            models=specs,
            batches=self._metrics.batches,
            images=self._metrics.images,
            recent_batch_sizes=list(self._metrics.recent_batch_sizes),
            metrics=self._metrics.snapshot(),
            message_features=list(messages.FEATURES),
            load_failures=self._models.load_failures(),
        ))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._safe_beat()

    def _follow(self) -> None:
        while not self._stop.wait(self._interval):
            self.tick()
            for chore in self._chores:
                try:
                    chore()
                except Exception:
                    log.exception("a periodic chore failed; it runs again next interval")

    def tick(self) -> None:
        """One look at the repository, then a beat to say what it changed. A look that fails (the
        repository out of reach) still beats, with the models held: the process is alive and
        serving them."""
        try:
            self._models.refresh()
        except Exception:
            log.exception("could not bring the models in step with the repository")
        self._safe_beat()

    def _safe_beat(self) -> None:
        try:
            self.beat()
        except redis.RedisError as exc:
            log.warning("heartbeat failed: %s", exc)
        except Exception:
            log.exception("heartbeat failed")
