"""The queues a worker consumes: each served model's, one a priority, kept in step with the repository.

The consumer's own timer looks at the repository every heartbeat interval (no TensorFlow: only
which model directories there are, and their ``config.json``): a model added gets its queues taken
up, and a model removed has them given up once they are empty, so that work admitted before the
removal is still taken and answered (with an error saying the model is gone) rather than left
queued for ever. The same look gives each model's batch limits to the batcher.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from inferq import model_config, priorities
from inferq.model_config import ConfigError
from inferq.repository import models_to_serve
from inferq.settings import Settings

log = logging.getLogger(__name__)


class ModelQueues:
    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self._settings = settings
        self._redis = client
        #: Each served model's batch size and wait, from its config.
        self.limits: dict[str, tuple[int, float]] = {}
        #: The queues consumed, interactive ones first.
        self.names: list[str] = self._wanted()

    def _wanted(self) -> list[str]:
        models = models_to_serve(self._settings)
        limits = {}
        for name, path in models.items():
            try:
                config = model_config.load(path)
            except ConfigError:
                config = model_config.ModelConfig()  # the model holder logs it
            limits[name] = (config.batch_size_or(self._settings.max_batch_size),
                            config.batch_wait_ms_or(self._settings.max_batch_wait_ms) / 1000)
        self.limits = limits
        # With no model yet, the queues of those this worker is for (WORKER_MODELS, else the default
        # model): their work waits there until one appears. Never another model's: its jobs would fail.
        names = list(models) or sorted(self._settings.served_models or [self._settings.default_model])
        queues = [queue for name in names for queue in priorities.queues(self._settings.model_queue(name))]
        if self._settings.default_model in names:
            queues += self._legacy_queues_with_work()
        return sorted(queues, key=priorities.rank)

    def _legacy_queues_with_work(self) -> list[str]:
        """The first releases' queues, which held the MNIST model's work, while they hold some: taken
        too, so that work queued across an upgrade is answered (``messages.LEGACY_FORMAT_VERSION``),
        and given up, as a removed model's are, once empty."""
        try:
            return [queue for queue in priorities.queues(self._settings.queue_name) if self._redis.llen(queue)]
        except redis.RedisError as exc:
            log.warning("could not look for work in the queues of earlier releases: %s", exc)
            return []

    def batch_limits(self, model: str) -> tuple[int, float]:
        return self.limits.get(model, (self._settings.max_batch_size, self._settings.max_batch_wait_ms / 1000))

    def queue_length(self) -> int:
        with self._redis.pipeline(transaction=False) as pipe:
            for queue in self.names:
                pipe.llen(queue)
            return sum(pipe.execute())

    def follow(self, consumer: Any) -> None:
        """Keep ``consumer`` (Celery's) consuming the served models' queues, from its own timer."""
        consumer.timer.call_repeatedly(self._settings.heartbeat_interval_s, self.sync, (consumer,))

    def sync(self, consumer: Any) -> None:
        try:
            wanted = self._wanted()
            for queue in wanted:
                if queue not in self.names:
                    consumer.add_task_queue(queue)
            kept = list(wanted)
            for queue in self.names:
                if queue in wanted:
                    continue
                if self._redis.llen(queue) == 0:
                    consumer.cancel_task_queue(queue)
                else:  # still holds work admitted for a removed model: answer it first
                    kept.append(queue)
            self.names = sorted(kept, key=priorities.rank)
        except (redis.RedisError, OSError) as exc:
            log.warning("could not bring the queues in step with the repository: %s", exc)
