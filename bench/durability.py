"""What a 202 that means "on disk" costs: ``python -m bench.durability``.

Two embedded Redis servers with an append-only file on this machine's disk, one with
``appendfsync everysec`` (the default) and one with ``always`` (REDIS_APPENDFSYNC=always), and the
real API app (``create_app``, Flask's test client, no HTTP server) on each, told by a stand-in
heartbeat that a worker serves MNIST; no worker runs, so the jobs stay queued. Each block posts
``--jobs`` one-image ``POST /jobs`` one after another (latency), then as many from ``--threads``
threads (throughput); the two settings alternate, block by block, so that a machine whose load
changes affects both alike. Prints each setting's figures and a JSON line.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import redis
from PIL import Image

from api.app import create_app
from bench import opening
from inferq import messages
from inferq.catalog import ModelCatalog
from inferq.model_spec import ANY, ModelSpec, TensorSpec
from inferq.settings import APPENDFSYNC_POLICIES, Settings
from inferq.worker_registry import WorkerRegistry, WorkerStatus
from launcher.redis_server import embedded_redis

MNIST = ModelSpec(Settings().default_model, 1, "serving_default",
                  (TensorSpec("inputdata", "float32", (ANY, 784), "inputdata:0"),),
                  (TensorSpec("labels", "int64", (ANY,), "inference:0"),
                   TensorSpec("probabilities", "float32", (ANY, 10), "probabilities:0")))


def png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def announce_worker(client: redis.Redis, settings: Settings) -> None:
    ModelCatalog(client).publish([MNIST])
    WorkerRegistry(client, heartbeat_interval_s=settings.heartbeat_interval_s).publish(WorkerStatus(
        name="bench:1", hostname="bench", pid=1, started_at=time.time(), models=[MNIST], batches=0, images=0,
        recent_batch_sizes=[], metrics=[], message_features=list(messages.FEATURES)))


@contextlib.contextmanager
def api_on(policy: str, data_dir: Path) -> Iterator[object]:
    """The API app on an embedded Redis that fsyncs its append-only file as ``policy`` says."""
    with embedded_redis(data_dir, persist=True, appendfsync=policy) as url:
        settings = Settings(redis_url=url, max_queue_depth=10_000_000, result_ttl_s=600,
                            heartbeat_interval_s=3600)  # the stand-in heartbeat stays live for the run
        announce_worker(redis.Redis.from_url(url), settings)
        yield create_app(settings)


def post_job(app, image: bytes) -> float:
    started = time.perf_counter()
    response = app.test_client().post("/jobs", data={"image": [(io.BytesIO(image), "digit.png")]})
    took = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.get_data(as_text=True)}")
    return took


def sequential(app, image: bytes, jobs: int) -> list[float]:
    return [post_job(app, image) for _ in range(jobs)]


def from_threads(app, image: bytes, jobs: int, threads: int) -> float:
    """Jobs a second with ``threads`` posting at once."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: post_job(app, image), range(jobs)))
    return jobs / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = opening.parser("bench.durability", __doc__)
    parser.add_argument("--jobs", type=int, default=200, help="jobs per block (default 200)")
    parser.add_argument("--threads", type=int, default=8, help="threads posting at once (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="blocks per setting (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="where the append-only files go (default: a "
                        "temporary directory; put it on the disk you mean to measure)")
    args = parser.parse_args(argv)
    image = png()
    root = args.dir or Path(tempfile.mkdtemp(prefix="inferq-durability-"))
    latencies: dict[str, list[float]] = {policy: [] for policy in APPENDFSYNC_POLICIES}
    rates: dict[str, list[float]] = {policy: [] for policy in APPENDFSYNC_POLICIES}
    with contextlib.ExitStack() as stack:
        apps = {}
        for policy in APPENDFSYNC_POLICIES:
            (root / policy).mkdir(parents=True, exist_ok=True)
            apps[policy] = stack.enter_context(api_on(policy, root / policy))
            sequential(apps[policy], image, 50)  # warm up: scripts loaded, connections open
        for _ in range(args.rounds):
            for policy, app in apps.items():
                latencies[policy] += sequential(app, image, args.jobs)
                rates[policy].append(from_threads(app, image, args.jobs, args.threads))
    summary = {}
    for policy in APPENDFSYNC_POLICIES:
        cuts = statistics.quantiles(latencies[policy], n=100)
        summary[policy] = {"p50_ms": round(cuts[49] * 1e3, 2), "p90_ms": round(cuts[89] * 1e3, 2),
                           "p99_ms": round(cuts[98] * 1e3, 2), "sequential_jobs_s": round(1 / statistics.mean(
                               latencies[policy])), f"jobs_s_{args.threads}_threads": round(statistics.median(
                                   rates[policy])), "jobs": len(latencies[policy])}
        print(f"appendfsync {policy}: POST /jobs p50 {cuts[49] * 1e3:.2f} ms, p90 {cuts[89] * 1e3:.2f} ms, "
              f"p99 {cuts[98] * 1e3:.2f} ms one at a time ({summary[policy]['sequential_jobs_s']} jobs/s); "
              f"{summary[policy][f'jobs_s_{args.threads}_threads']} jobs/s from {args.threads} threads "
              f"(median of {args.rounds} blocks)")
    print(json.dumps({"post_jobs": summary, "dir": str(root)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
