"""Which workers are alive and what they serve: their heartbeats in Redis.

Each model-holding worker process publishes a :class:`WorkerStatus` every heartbeat interval; it
expires after three missed beats. The API reads them for ``/readyz``, ``/models`` and ``/metrics``
(the workers' counters travel in the heartbeat, so one scrape of the API shows the whole system).
"""

from __future__ import annotations

import dataclasses
import json
import time

import redis

from inferq import keys
from inferq.model_spec import ModelSpec

MISSED_BEATS = 3


@dataclasses.dataclass(frozen=True)
class WorkerStatus:
    name: str
    hostname: str
    pid: int
    started_at: float
    #: Each model version the process serves: its inputs, outputs and config.
    models: list[ModelSpec]
    batches: int
    images: int
    #: Images in each of the latest batches, oldest first.
    recent_batch_sizes: list[int]
    #: Prometheus metric families, as :func:`inferq.metric_snapshots.snapshot` writes them.
    metrics: list[dict]
    seen_at: float = 0.0
    #: What the worker reads beyond the first version-2 messages (``inferq.messages.FEATURES``);
    #: none for a worker of an earlier release.
    message_features: list[str] = dataclasses.field(default_factory=list)
    #: Versions the worker found complete but could not load, and tries again with backoff: each
    #: ``{"model", "version", "attempts", "error"}``.
    load_failures: list[dict] = dataclasses.field(default_factory=list)


def served_versions(live: list[WorkerStatus]) -> dict[str, set[int]]:
    """Each model the ``live`` workers serve, with the versions they serve."""
    served: dict[str, set[int]] = {}
    for worker in live:
        for spec in worker.models:
            served.setdefault(spec.name, set()).add(spec.version)
    return served


class WorkerRegistry:
    def __init__(self, client: redis.Redis, *, heartbeat_interval_s: float) -> None:
        self._redis = client
        self._ttl = MISSED_BEATS * heartbeat_interval_s

    def publish(self, status: WorkerStatus) -> None:
        now = time.time()
        record = json.dumps(_to_json(dataclasses.replace(status, seen_at=now)))
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.worker(status.name), record, px=int(self._ttl * 1000))
            pipe.zadd(keys.WORKERS, {status.name: now})
            pipe.zremrangebyscore(keys.WORKERS, "-inf", now - self._ttl)
            pipe.execute()

    def remove(self, name: str) -> None:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.worker(name))
            pipe.zrem(keys.WORKERS, name)
            pipe.execute()

    def live(self) -> list[WorkerStatus]:
        names = self._redis.zrangebyscore(keys.WORKERS, time.time() - self._ttl, "+inf")
        if not names:
            return []
        records = self._redis.mget([keys.worker(name.decode()) for name in names])
        return [_from_json(json.loads(record)) for record in records if record is not None]


def _to_json(status: WorkerStatus) -> dict:
    fields = {field.name: getattr(status, field.name) for field in dataclasses.fields(status)}
    return {**fields, "models": [spec.to_json() for spec in status.models]}


def _from_json(data: dict) -> WorkerStatus:
    fields = {field.name for field in dataclasses.fields(WorkerStatus)}
    # A heartbeat of a worker from before the model repository describes one model: read as none.
    known = {key: value for key, value in data.items() if key in fields}
    known["models"] = [ModelSpec.from_json(spec) for spec in data.get("models", [])]
    return WorkerStatus(**known)
