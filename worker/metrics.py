"""A worker process's own metrics, published with each heartbeat (the API's /metrics sums them)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

from inferq.messages import JobInput
from inferq.metric_snapshots import snapshot

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096)
WAIT_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
SECONDS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: Sizes of the latest batches kept for the status strip of the web page.
RECENT_BATCHES = 20


class WorkerMetrics:
    """Counted per model and version, so that one worker serving several models shows each."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        model_version = ["model", "version"]
        self.batch_images = Histogram(
            "inferq_worker_batch_images", "Items per batch of a model, each batch one model call.",
            model_version, buckets=BATCH_BUCKETS, registry=self.registry,
        )
        self.model_call_seconds = Histogram(
            "inferq_worker_model_call_seconds", "Time of one model call.",
            model_version, buckets=SECONDS_BUCKETS, registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "inferq_worker_batch_seconds", "Time of one batch: decoding, model calls, writing outcomes.",
            buckets=SECONDS_BUCKETS, registry=self.registry,
        )
        self.messages = Counter(
            "inferq_worker_messages", "Messages taken from the queue.", registry=self.registry,
        )
        self.failed_jobs = Counter(
            "inferq_worker_failed_jobs", "Jobs answered with an error.", ["model"], registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "inferq_worker_queue_wait_seconds", "Time from a job's admission to its batch's start.",
            ["model", "priority"], buckets=WAIT_BUCKETS, registry=self.registry,
        )
        self.expired_jobs = Counter(
            "inferq_worker_expired_jobs", "Jobs not run because their deadline had passed.",
            ["model", "priority"], registry=self.registry,
        )
        self.model_load_failures = Counter(
            "inferq_worker_model_load_failures", "Loads of a model version that failed (each is tried again).",
            model_version, registry=self.registry,
        )
        self.recent_batch_sizes: deque[int] = deque(maxlen=RECENT_BATCHES)
        self._batches = 0
        self._images = 0

    def record_waits(self, model: str, jobs: Iterable[JobInput], now: float) -> None:
        for job in jobs:
            if job.queued_at is not None:
                self.queue_wait_seconds.labels(model, job.priority).observe(max(0.0, now - job.queued_at))

    def record_load_failure(self, model: str, version: int) -> None:
        self.model_load_failures.labels(model, str(version)).inc()

    def record_call(self, model: str, version: int, items: int, seconds: float) -> None:
        self.batch_images.labels(model, str(version)).observe(items)
        self.model_call_seconds.labels(model, str(version)).observe(seconds)
        self.recent_batch_sizes.append(items)
        self._batches += 1
        self._images += items

    @property
    def batches(self) -> int:
        """Model calls made, every model together."""
        return self._batches

    @property
    def images(self) -> int:
        """Items answered by them."""
        return self._images

    def snapshot(self) -> list[dict]:
        return snapshot(self.registry)
