"""Every scenario of a benchmark run, against one model.

Sync ``POST /recognize`` with one image at several concurrencies on inferq, on inferq with
MAX_BATCH_SIZE=1 (what batching buys) and on the architecture inferq grew from (Flask + one session
call a request), each under every HTTP server of the plan, the reference always under the same
server as inferq; bulk async jobs of 256 images; the client (``inferq score``) on the 10,000 test
digits beside bulk; interactive requests beside a full bulk queue (``bench.mixed``, for the first
model of a run); the tensor path over KServe v2's HTTP and gRPC carriers (``bench.tensors``); a
worker draining a queue filled before it started; the model call alone (``bench.calls``), which
tells the model's regime; and the defaults against what ``inferq tune`` proposes, beside the limit
(the model alone at the chosen batch) and bulk scoring end to end as a share of it (``bench.tuned``).
"""

from __future__ import annotations

import dataclasses
import re
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench import calls, systems, tensors, tuned
from bench.client import ClientResult, client_score
from bench.drain import DrainResult, drain
from bench.load import BulkResult, SyncPoint, bulk, wrk
from bench.mixed import MIXED_QUEUE_DEPTH, MixedResult, mixed
from bench.models import BenchModel
from inferq.settings import Settings


@dataclasses.dataclass
class Plan:
    clients: list[int]
    seconds: float
    bulk_jobs: dict[str, int]  # upload ("idx" or "png") -> jobs of 256 images
    drain_messages: int
    call_batches: list[int]
    call_threads: list[int]
    #: HTTP servers, the first for every scenario, the others for the sync sweeps.
    servers: list[str]
    mixed_seconds: float
    #: Concurrencies of the tensor path's sweep (``bench.tensors``).
    tensor_clients: list[int] = dataclasses.field(default_factory=lambda: [1, 64])
    #: The tune measurement's --quick, and one round of each system against two (``bench.tuned``).
    quick: bool = False

    @classmethod
    def for_run(cls, quick: bool, servers: list[str]) -> Plan:
        # Both include 1 and 64 clients, the points the summary reports.
        if quick:
            return cls([1, 64], 3, {"idx": 20, "png": 5}, 1000, [1, 64], [1], servers, 4, quick=True)
        return cls([1, 16, 64, 128], 10, {"idx": 80, "png": 20}, 5000, [1, 16, 64, 256], [1, 0], servers, 10)


@dataclasses.dataclass
class ModelRun:
    model: BenchModel
    sweeps: dict[str, list[SyncPoint]]
    bulk: list[BulkResult]
    drain: DrainResult
    calls: list[calls.CallPoint]
    client: ClientResult
    mixed: MixedResult | None
    servers: list[str]
    #: The tensor path by carrier (``bench.tensors``): KServe v2 binary over HTTP, and over gRPC.
    tensors: dict[str, list[SyncPoint]] = dataclasses.field(default_factory=dict)
    #: The defaults against ``inferq tune``'s proposal, and the limit (``bench.tuned``).
    tuned: tuned.TunedComparison | None = None

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
            "client_images_per_s": round(self.client.images_per_s),
            "client_vs_bulk": round(self.client.images_per_s / self.bulk[0].images_per_s, 2),
            **(self._mixed_summary() if self.mixed else {}),
            "api_server": self.servers[0],
            "by_server": self._by_server(),
            **self._tensor_summary(),
            **({"tuned": self.tuned.summary()} if self.tuned else {}),
        }

    def _tensor_summary(self) -> dict[str, object]:
        if not self.tensors:
            return {}
        http, grpc = (_by_clients(self.tensors[name]) for name in (tensors.HTTP, tensors.GRPC))
        figures: dict[str, object] = {}
        for clients in sorted(set(http) & set(grpc)):
            figures.update({
                f"tensor_http_rps_c{clients}": round(http[clients].rps, 1),
                f"tensor_grpc_rps_c{clients}": round(grpc[clients].rps, 1),
                f"tensor_grpc_vs_http_c{clients}": round(grpc[clients].rps / http[clients].rps, 2),
                f"tensor_http_p99_ms_c{clients}": round(http[clients].p99_ms, 1),
                f"tensor_grpc_p99_ms_c{clients}": round(grpc[clients].p99_ms, 1),
                f"tensor_http_p50_ms_c{clients}": round(http[clients].p50_ms, 2),
                f"tensor_grpc_p50_ms_c{clients}": round(grpc[clients].p50_ms, 2),
            })
        if tensors.PEER_HTTP in self.tensors:
            figures["pytriton"] = self._peer_summary(http, grpc)
        return figures

    def _peer_summary(self, http: dict[int, SyncPoint], grpc: dict[int, SyncPoint]) -> dict[str, float]:
        """PyTriton's figures over each carrier, and inferq's throughput over them, carrier by carrier."""
        figures: dict[str, float] = {}
        for carrier, ours, name in (("http", http, tensors.PEER_HTTP), ("grpc", grpc, tensors.PEER_GRPC)):
            theirs = _by_clients(self.tensors[name])
            for clients in sorted(set(ours) & set(theirs)):
                figures.update({
                    f"{carrier}_rps_c{clients}": round(theirs[clients].rps, 1),
                    f"{carrier}_p50_ms_c{clients}": round(theirs[clients].p50_ms, 2),
                    f"{carrier}_p99_ms_c{clients}": round(theirs[clients].p99_ms, 1),
                    f"inferq_vs_pytriton_{carrier}_c{clients}": round(ours[clients].rps / theirs[clients].rps, 2)
                    if theirs[clients].rps else 0.0,
                })
        return figures

    def _mixed_summary(self) -> dict[str, object]:
        assert self.mixed is not None
        return {
            "mixed_interactive_p99_ms": round(self.mixed.with_priorities.p99_ms, 1),
            "mixed_interactive_alone_p99_ms": round(self.mixed.interactive_alone.p99_ms, 1),
            "mixed_bulk_vs_alone": round(self.mixed.with_priorities_bulk_images_per_s
                                         / self.mixed.bulk_alone_images_per_s, 2),
            "mixed_goals": self.mixed.goals(),
            # The open-loop yardstick (bench.open_loop): a fixed small rate, idle and beside bulk.
            **({"mixed_open_loop_idle_p99_ms": round(self.mixed.open_loop_idle.p99_ms, 1),
                "mixed_open_loop_p99_ms": round(self.mixed.open_loop_mixed.p99_ms, 1)}
               if self.mixed.open_loop_idle is not None and self.mixed.open_loop_mixed is not None else {}),
        }

    def _by_server(self) -> dict[str, dict[str, float]]:
        """The headline figures under each server, inferq's and the reference's under the same one."""
        figures = {}
        for index, server in enumerate(self.servers):
            ours = _by_clients(self.sweeps["inferq" if index == 0 else f"inferq@{server}"])
            seed = _by_clients(self.sweeps["seed reference" if index == 0 else f"ref@{server}"])
            top = max(ours)
            figures[server] = {
                f"sync_rps_c{top}": round(ours[top].rps, 1),
                f"seed_rps_c{top}": round(seed[top].rps, 1),
                "ratio_vs_seed": round(ours[top].rps / seed[top].rps, 2),
                f"p99_ms_c{top}": round(ours[top].p99_ms, 1),
                "p50_ms_c1": round(ours[1].p50_ms, 2),
                "seed_p50_ms_c1": round(seed[1].p50_ms, 2),
            }
        return figures


def run_model(model: BenchModel, redis_url: str, plan: Plan, images: np.ndarray, labels: np.ndarray,
              bodies: list[Path], work: Path, *, with_mixed: bool, peer: Path | None = None) -> ModelRun:
    """``peer``: PyTriton's interpreter (``bench.peers``), to run the tensor path on it too; None: no peer."""
    first, *others = plan.servers
    sweeps: dict[str, list[SyncPoint]] = {}
    mixed_result = None
    # The bulk queue's limit is the mixed scenario's (bench.mixed): larger than the default, harmless to the rest.
    with systems.inferq_processes(redis_url, model.model_dir, grpc=True, API_SERVER=first,
                                  MAX_QUEUE_DEPTH=MIXED_QUEUE_DEPTH) as running:
        base = running.base_url
        sweeps["inferq"] = _sweep(base, plan, bodies)
        assert running.grpc_address is not None
        tensor_body = tensors.bodies(images[0], int(labels[0]), systems.SERVED_MODEL, work / "tensors")
        by_carrier = tensors.sweep(base, running.grpc_address, systems.SERVED_MODEL, tensor_body, plan.tensor_clients,
                                   plan.seconds, work / "tensors", running.pids)
        bulk_results = [bulk(base, images, labels, jobs=jobs, per_job=256, upload=upload)
                        for upload, jobs in plan.bulk_jobs.items()]
        client = client_score(base, images, labels, work)
        if with_mixed:
            mixed_result = mixed(base, redis_url, MIXED_QUEUE_DEPTH, images, bodies,
                                 plan.mixed_seconds)
    with systems.inferq(redis_url, model.model_dir, MAX_BATCH_SIZE=1, API_SERVER=first) as base:
        sweeps["inferq batch=1"] = _sweep(base, plan, bodies)
    drained = drain(redis_url, model.model_dir, images, count=plan.drain_messages, per_message=1)
    with systems.seed_reference(model.model_dir, bodies[0].read_bytes(), first) as base:
        sweeps["seed reference"] = _sweep(base, plan, bodies)
    if peer is not None:
        # Batching as inferq's workers were told to (MAX_BATCH_SIZE, MAX_BATCH_WAIT_MS): same load, same limits.
        settings = Settings.from_env()
        with systems.pytriton_reference(model.model_dir, peer, max_batch_size=settings.max_batch_size,
                                        max_batch_wait_ms=settings.max_batch_wait_ms,
                                        log_file=work / "pytriton.log") as running_peer:
            by_carrier.update(tensors.sweep(running_peer.base_url, running_peer.grpc_address, systems.SERVED_MODEL,
                                            tensor_body, plan.tensor_clients, plan.seconds, work / "tensors",
                                            names=(tensors.PEER_HTTP, tensors.PEER_GRPC)))
    for server in others:
        with systems.inferq(redis_url, model.model_dir, API_SERVER=server) as base:
            sweeps[f"inferq@{server}"] = _sweep(base, plan, bodies)
        with systems.seed_reference(model.model_dir, bodies[0].read_bytes(), server) as base:
            sweeps[f"ref@{server}"] = _sweep(base, plan, bodies)
    # Last, with nothing else running: the call alone, on an idle machine.
    measured = calls.measure(model.model_dir, plan.call_batches, plan.call_threads)
    comparison = tuned.compare(model, redis_url, images, labels, bodies, work, quick=plan.quick, seconds=plan.seconds)
    return ModelRun(model, sweeps, bulk_results, drained, measured, client, mixed_result, plan.servers, by_carrier,
                    comparison)


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
    return batch_totals(text)


def batch_totals(metrics: str, model: str = systems.SERVED_MODEL) -> tuple[float, float]:
    """Images and batches of ``model`` in a /metrics text: its samples, one a version, summed."""
    label = f'model="{model}"'
    totals = {"sum": 0.0, "count": 0.0}
    for kind, labels, value in re.findall(r"^inferq_worker_batch_images_(sum|count)\{([^}]*)\} (\S+)$", metrics,
                                          re.MULTILINE):
        if label in labels.split(","):
            totals[kind] += float(value)
    return totals["sum"], totals["count"]


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
