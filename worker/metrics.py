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
    def __init__(self, model_name: str = "mnist") -> None:
        self.model_name = model_name
        self.registry = CollectorRegistry()
        self.batch_images = Histogram(
            "inferq_worker_batch_images", "Images per batch, each batch one model call.",
            buckets=BATCH_BUCKETS, registry=self.registry,
        )
        self.model_call_seconds = Histogram(
            "inferq_worker_model_call_seconds", "Time of one model call.",
            buckets=SECONDS_BUCKETS, registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "inferq_worker_batch_seconds", "Time of one batch: decoding, model call, writing outcomes.",
            buckets=SECONDS_BUCKETS, registry=self.registry,
        )
        self.messages = Counter(
            "inferq_worker_messages", "Messages taken from the queue.", registry=self.registry,
        )
        self.failed_jobs = Counter(
            "inferq_worker_failed_jobs", "Jobs answered with an error.", registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "inferq_worker_queue_wait_seconds", "Time from a job's admission to its batch's start.",
            ["model", "priority"], buckets=WAIT_BUCKETS, registry=self.registry,
        )
        self.expired_jobs = Counter(
            "inferq_worker_expired_jobs", "Jobs not run because their deadline had passed.",
            ["model", "priority"], registry=self.registry,
        )
        self.recent_batch_sizes: deque[int] = deque(maxlen=RECENT_BATCHES)

    def record_waits(self, jobs: Iterable[JobInput], now: float) -> None:
        for job in jobs:
            if job.queued_at is not None:
                self.queue_wait_seconds.labels(self.model_name, job.priority).observe(max(0.0, now - job.queued_at))

    def record_batch(self, images: int, seconds: float) -> None:
        self.batch_images.observe(images)
        self.batch_seconds.observe(seconds)
        self.recent_batch_sizes.append(images)

    @property
    def batches(self) -> int:
        return int(self.registry.get_sample_value("inferq_worker_batch_images_count") or 0)

    @property
    def images(self) -> int:
        return int(self.registry.get_sample_value("inferq_worker_batch_images_sum") or 0)

    def snapshot(self) -> list[dict]:
        return snapshot(self.registry)
