"""Everything one model-holding worker process needs, built once when the process starts.

With the solo pool that is the worker process itself; with prefork, each pool process builds its
own after the fork (TensorFlow does not survive one) and so holds its own copy of the models.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from inferq.broker import HeldMessages
from inferq.catalog import ModelCatalog
from inferq.drain import DrainMeter
from inferq.jobs import JobStore
from inferq.model_spec import ModelSpec
from inferq.redis_connection import connect
from inferq.settings import Settings
from inferq.worker_registry import WorkerRegistry
from worker.callback_delivery import CallbackDeliverer
from worker.counters import CounterRecount
from worker.heartbeat import Heartbeat
from worker.inference import answer_batch
from worker.interactive_first import InteractiveFirst
from worker.loaded_models import LoadedModels
from worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)

#: Seconds between recounts of the queued-items counters, by one worker of the fleet at a time.
RECOUNT_INTERVAL_S = 60.0


class Engine:
    def __init__(self, settings: Settings) -> None:
        client = self._client = connect(settings.redis_url, sentinel_master=settings.redis_sentinel_master)
        self.store = JobStore(client, result_ttl_s=settings.result_ttl_s, depth_limits=settings.depth_limits)
        self.metrics = WorkerMetrics()
        self.models = LoadedModels(settings, on_load_failure=self.metrics.record_load_failure)
        self._registry = WorkerRegistry(client, heartbeat_interval_s=settings.heartbeat_interval_s)
        self._catalog = ModelCatalog(client)
        self._interval_s = settings.heartbeat_interval_s
        self._root = settings.repository_root
        self._legacy_model = settings.default_model
        self._max_batch_size = settings.max_batch_size
        self._heartbeat: Heartbeat | None = None
        self._deliverer = CallbackDeliverer(client, self.store, settings, self._spec_of)
        self._stop = threading.Event()
        self._interactive_first: InteractiveFirst | None = None

    def answer_interactive_first(self, connect: Callable[[], Any], queues: Callable[[], Sequence[str]]) -> None:
        """Between a batch's model calls, answer the interactive work queued in ``queues`` first
        (``worker.interactive_first``), taken over a kombu connection from ``connect``."""
        self._interactive_first = InteractiveFirst(self._client, connect, queues, self._answer,
                                                   self._max_batch_size)

    def start(self) -> None:
        """Load the models, waiting for one to appear, then start the heartbeat (in this process)."""
        announced = False
        while True:
            self.models.refresh()
            if self.models.any_loaded:
                break
            if not announced:
                log.warning("no loadable model in %s yet; waiting for one", self._root)
                announced = True
            if self._stop.wait(self._interval_s):
                return
        def names() -> list[str]:
            return sorted({spec.name for spec in self.models.specs()})

        recount = CounterRecount(self._client, self.store, names, worker=Heartbeat.process_name(),
                                 interval_s=RECOUNT_INTERVAL_S)
        drain = DrainMeter(self._client, names, worker=Heartbeat.process_name(), interval_s=self._interval_s)
        self._heartbeat = Heartbeat(self._registry, self._catalog, self.models, self.metrics, self._interval_s,
                                    chores=[recount.maybe_run, drain.maybe_sample])
        self._heartbeat.start()
        self._deliverer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._interactive_first is not None:
            self._interactive_first.close()
        self._deliverer.stop()
        if self._heartbeat is not None:
            self._heartbeat.stop()

    def _spec_of(self, model: str) -> ModelSpec | None:
        """``model``'s newest version this process serves, for a callback's class names."""
        versions = [spec for spec in self.models.specs() if spec.name == model]
        return max(versions, key=lambda spec: spec.version) if versions else None

    def run_batch(self, bodies: Sequence[object], acks: HeldMessages | None = None) -> bool:
        """Answer a batch; with ``acks``, acknowledge its messages with its outcomes. Answers whether
        they were acknowledged (``worker.inference.answer_batch``)."""
        first = self._interactive_first
        return self._answer(bodies, first.between_calls if first is not None else None, acks)

    def _answer(self, bodies: Sequence[object], between_calls: Callable[[], None] | None = None,
                acks: HeldMessages | None = None) -> bool:
        return answer_batch(bodies, self.models.model, self.store, self.metrics, legacy_model=self._legacy_model,
                            max_batch_size=self._max_batch_size, between_calls=between_calls, acks=acks)
