"""The API's Prometheus metrics, and the scrape that shows the whole system.

``GET /metrics`` gives the API's own metrics (requests by route and status, latencies, images
accepted), the queue depth and live workers read from Redis at scrape time, and the workers'
metrics summed from their heartbeats (batch sizes, model-call times). The API's own metrics are
gathered across its processes with prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR,
set by config/gunicorn.conf.py or api/granian_server.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from api.queue.model_lookup import ServedModels
from inferq.jobs import JobStore
from inferq.metric_snapshots import merge
from inferq.tenants import TenantDirectory
from inferq.worker_registry import WorkerRegistry

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class ApiMetrics:
    def __init__(self, store: JobStore, workers: WorkerRegistry, models: ServedModels,
                 tenants: TenantDirectory | None = None) -> None:
        self._own = CollectorRegistry()
        self.requests = Counter(
            "inferq_http_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=self._own,
        )
        self.latency = Histogram(
            "inferq_http_request_seconds", "Time from request to response, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=self._own,
        )
        self.images_accepted = Counter(
            "inferq_images_accepted", "Items (images, rows) admitted to the queue, by model.", ["model"],
            registry=self._own,
        )
        self.replies_skipped = Counter(
            "inferq_replies_skipped", "Replies the API's reply listener could not read or deliver, and skipped.",
            registry=self._own,
        )
        self._system = _SystemCollector(store, workers, models, tenants or TenantDirectory())
        self._own.register(self._system)

    def render(self) -> bytes:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self._own)
        # This process's counts are only a share of the API's: the files of all its processes sum up.
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        scrape.register(self._system)
        return generate_latest(scrape)


class _SystemCollector:
    """What Redis knows at scrape time: queue depth, live workers and their summed metrics, each
    tenant's counts."""

    def __init__(self, store: JobStore, workers: WorkerRegistry, models: ServedModels,
                 tenants: TenantDirectory) -> None:
        self._tenants = tenants
        self._store = store
        self._workers = workers
        self._models = models

    def collect(self) -> Iterator[Metric]:
        try:
            depth = self._store.queued_images(list(self._models.all()))
            unreplicated = self._store.unreplicated_admissions()
            live = self._workers.live()
            tenants = self._store.tenant_stats([tenant.name for tenant in self._tenants.tenants()])
        except redis.RedisError as exc:
            log.warning("metrics: Redis out of reach: %s", exc)
            yield GaugeMetricFamily("inferq_redis_up", "Whether the API reached Redis at this scrape.", 0)
            return
        yield GaugeMetricFamily("inferq_redis_up", "Whether the API reached Redis at this scrape.", 1)
        queued = GaugeMetricFamily("inferq_queue_images", "Items admitted and not yet answered.",
                                   labels=["model", "priority"])
        for model, lanes in depth.items():
            for priority, images in lanes.items():
                queued.add_metric([model, priority], images)
        yield queued
        yield CounterMetricFamily("inferq_unreplicated_admissions",
                                  "Admissions the replicas asked for did not acknowledge in time "
                                  "(taken back, or already running).", unreplicated)
        yield GaugeMetricFamily("inferq_workers", "Worker processes with a recent heartbeat.", len(live))
        yield from _tenant_metrics(tenants)
        yield from merge(worker.metrics for worker in live)


def _tenant_metrics(tenants: dict[str, dict]) -> Iterator[Metric]:
    """Each tenant's counts (``JobStore.tenant_stats``), labelled by tenant."""
    queued = GaugeMetricFamily("inferq_tenant_queued_items", "Items of a tenant admitted and not yet ended.",
                               labels=["tenant"])
    admitted = CounterMetricFamily("inferq_tenant_items_admitted", "Items of a tenant admitted.", labels=["tenant"])
    refused = CounterMetricFamily("inferq_tenant_items_refused",
                                  "Items of a tenant refused, by the limit: its own (429) or its lane's (503).",
                                  labels=["tenant", "limit"])
    ended = CounterMetricFamily("inferq_tenant_items_ended", "Items of a tenant answered (or cancelled, expired).",
                                labels=["tenant"])
    waits = SummaryMetricFamily("inferq_tenant_queue_wait_seconds", "How long a tenant's jobs waited queued.",
                                labels=["tenant"])
    for tenant, stats in tenants.items():
        queued.add_metric([tenant], stats["queued_items"])
        admitted.add_metric([tenant], stats["items_admitted"])
        ended.add_metric([tenant], stats["items_ended"])
        for limit, items in stats["items_refused"].items():
            refused.add_metric([tenant, limit], items)
        waits.add_metric([tenant], stats["jobs_started"], stats["queue_wait_s_total"])
    yield from (queued, admitted, refused, ended, waits)
