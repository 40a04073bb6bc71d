"""Every scenario of a benchmark run, against one model.

Sync ``POST /recognize`` with one image at several concurrencies on inferq, on inferq with
MAX_BATCH_SIZE=1 (what batching buys) and on the seed's architecture (Flask + one session call a
request); bulk async jobs of 256 images; a worker draining a queue filled before it started; and the
model call alone (``bench.calls``), which tells the model's regime.
"""

from __future__ import annotations

import dataclasses
import re
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench import calls, systems
from bench.drain import DrainResult, drain
from bench.load import BulkResult, SyncPoint, bulk, wrk
from bench.models import BenchModel


@dataclasses.dataclass
class Plan:
    clients: list[int]
    seconds: float
    bulk_jobs: dict[str, int]  # upload ("idx" or "png") -> jobs of 256 images
    drain_messages: int
    call_batches: list[int]
    call_threads: list[int]

    @classmethod
    def for_run(cls, quick: bool) -> Plan:
        # Both include 1 and 64 clients, the points the summary reports.
        if quick:
            return cls([1, 64], 3, {"idx": 20, "png": 5}, 1000, [1, 64], [1])
        return cls([1, 16, 64, 128], 10, {"idx": 80, "png": 20}, 5000, [1, 16, 64, 256], [1, 0])


@dataclasses.dataclass
class ModelRun:
    model: BenchModel
    sweeps: dict[str, list[SyncPoint]]
    bulk: list[BulkResult]
    drain: DrainResult
    calls: list[calls.CallPoint]

    def summary(self) -> dict[str, object]:
        """The run in figures; the keys of a one-model run before there were several, plus the new ones."""
        ours, seed, nobatch = (_by_clients(self.sweeps[name])
                               for name in ("inferq", "seed reference", "inferq batch=1"))
        one_thread = {point.batch: point for point in self.calls if point.threads == 1}
        return {
            "regime": self.model.regime,
            "sync_rps_c64": round(ours[64].rps, 1),
            "seed_rps_c64": round(seed[64].rps, 1),
            "ratio_vs_seed": round(ours[64].rps / seed[64].rps, 2),
            "nobatch_rps_c64": round(nobatch[64].rps, 1),
            "batching_gain_c64": round(ours[64].rps / nobatch[64].rps, 2),
            "mean_batch_c64": round(ours[64].mean_batch or 0, 1),
            "p99_ms_c64": round(ours[64].p99_ms, 1),
            "errors_c64": ours[64].errors,
            "p50_ms_c1": round(ours[1].p50_ms, 2),
            "seed_p50_ms_c1": round(seed[1].p50_ms, 2),
            "bulk_images_per_s": round(self.bulk[0].images_per_s),
            "bulk_png_images_per_s": round(self.bulk[1].images_per_s),
            "drain_messages_per_s": round(self.drain.messages_per_s),
            "drain_mean_batch": round(self.drain.mean_batch, 1),
            "call_ms_1_thread": {str(batch): round(point.ms_per_call, 3) for batch, point in one_thread.items()},
        }


def run_model(model: BenchModel, redis_url: str, plan: Plan, images: np.ndarray, labels: np.ndarray,
              bodies: list[Path]) -> ModelRun:
    sweeps: dict[str, list[SyncPoint]] = {}
    with systems.inferq(redis_url, model.model_dir) as base:
        sweeps["inferq"] = _sweep(base, plan, bodies)
        bulk_results = [bulk(base, images, labels, jobs=jobs, per_job=256, upload=upload)
                        for upload, jobs in plan.bulk_jobs.items()]
    with systems.inferq(redis_url, model.model_dir, MAX_BATCH_SIZE=1) as base:
        sweeps["inferq batch=1"] = _sweep(base, plan, bodies)
    drained = drain(redis_url, model.model_dir, images, count=plan.drain_messages, per_message=1)
    with systems.seed_reference(model.model_dir, bodies[0].read_bytes()) as base:
        sweeps["seed reference"] = _sweep(base, plan, bodies)
    # Last, with nothing else running: the call alone, on an idle machine.
    measured = calls.measure(model.model_dir, plan.call_batches, plan.call_threads)
    return ModelRun(model, sweeps, bulk_results, drained, measured)


def _sweep(base: str, plan: Plan, bodies: list[Path]) -> list[SyncPoint]:
    wrk(base, 8, 1, bodies)  # warm up: connections, caches, first model calls
    points = []
    for concurrency in plan.clients:
        before = _batch_totals(base)
        point = wrk(base, concurrency, plan.seconds, bodies)
        if before is not None:
            point.mean_batch = _mean_batch_since(base, before, point)
        points.append(point)
    return points


def _batch_totals(base: str) -> tuple[float, float] | None:
    """Images and batches the workers have run, from the API's /metrics; None for the reference."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    found = dict(re.findall(r"^inferq_worker_batch_images_(sum|count) (\S+)$", text, re.MULTILINE))
    return (float(found.get("sum", 0)), float(found.get("count", 0))) if found else (0.0, 0.0)


def _mean_batch_since(base: str, before: tuple[float, float], point: SyncPoint) -> float | None:
    # Worker metrics arrive with heartbeats (every 0.5 s here): wait until they cover the run.
    deadline = time.monotonic() + 5
    while True:
        after = _batch_totals(base)
        images, batches = after[0] - before[0], after[1] - before[1]
        if batches and (images >= point.answered or time.monotonic() > deadline):
            return images / batches
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def _by_clients(points: list[SyncPoint]) -> dict[int, SyncPoint]:
    return {point.concurrency: point for point in points}
