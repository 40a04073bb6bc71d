"""Everything one model-holding worker process needs, built once when the process starts.

With the solo pool that is the worker process itself; with prefork, each pool process builds its
own after the fork (TensorFlow does not survive one) and so holds its own copy of the model.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from inferq.jobs import JobStore
from inferq.redis_connection import connect
from inferq.settings import Settings
from inferq.workers import WorkerRegistry
from worker.heartbeat import Heartbeat
from worker.inference import run_batch
from worker.metrics import WorkerMetrics
from worker.model_holder import ModelHolder


class Engine:
    def __init__(self, settings: Settings) -> None:
        client = connect(settings.redis_url, sentinel_master=settings.redis_sentinel_master)
        self.store = JobStore(client, result_ttl_s=settings.result_ttl_s, depth_limits=settings.depth_limits)
        self.metrics = WorkerMetrics(settings.model_name)
        self.holder = ModelHolder(
            settings.model_dir,
            settings.model_name,
            intra_op_threads=settings.tf_intra_op_threads,
            inter_op_threads=settings.tf_inter_op_threads,
        )
        self._registry = WorkerRegistry(client, heartbeat_interval_s=settings.heartbeat_interval_s)
        self._interval_s = settings.heartbeat_interval_s
        self._heartbeat: Heartbeat | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Load the model, waiting for one to appear, then start the heartbeat (in this process)."""
        if self.holder.wait_for_model(self._stop, self._interval_s) is None:
            return
        self._heartbeat = Heartbeat(self._registry, self.holder, self.metrics, self._interval_s)
        self._heartbeat.start()

    def stop(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.stop()

    def run_batch(self, bodies: Sequence[object]) -> None:
        model = self.holder.current
        if model is None:
            raise RuntimeError("no model loaded")
        run_batch(bodies, model, self.store, self.metrics)
