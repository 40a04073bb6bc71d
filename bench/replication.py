"""What waiting for a replica costs an admission: ``python -m bench.replication``.

A primary and its replica (embedded Redis servers on this machine), and one client admitting
one-image jobs with their message, as the API does, one after another: with
REDIS_MIN_REPLICAS_ACKED=0 (no WAIT) and =1 (WAIT in the same round trip, and ROLE), in
alternating blocks so that a machine whose load changes affects both alike. Prints each setting's
latency percentiles and a JSON line.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import redis

from bench import opening
from inferq import messages, mnist_contract
from inferq.celery_app import make_celery
from inferq.jobs import JobStore
from inferq.priorities import BULK
from inferq.settings import Settings
from inferq.task_messages import TaskMessages
from launcher.processes import free_port, redis_answers
from launcher.redis_server import embedded_redis_command


@contextlib.contextmanager
def primary_and_replica(data_dir: Path) -> Iterator[tuple[str, str]]:
    """Their URLs, once the replica is in sync."""
    ports = free_port(), free_port()
    processes = [subprocess.Popen([*embedded_redis_command(ports[0], data_dir, persist=False),
                                   "--repl-diskless-sync-delay", "0"], stdout=subprocess.DEVNULL)]
    try:
        primary = redis.Redis(port=ports[0])
        _wait(lambda: redis_answers(primary), "the primary")
        processes.append(subprocess.Popen([*embedded_redis_command(ports[1], data_dir, persist=False),
                                           "--replicaof", "127.0.0.1", str(ports[0])], stdout=subprocess.DEVNULL))
        replica = redis.Redis(port=ports[1])
        _wait(lambda: redis_answers(replica) and replica.info("replication")["master_link_status"] == "up",
              "the replica to sync")
        yield f"redis://127.0.0.1:{ports[0]}/0", f"redis://127.0.0.1:{ports[1]}/0"
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def _wait(condition, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


#: The model the admitted jobs are for: no worker runs them, so any name does; the default model's.
MODEL = Settings().default_model


def admission_latencies(store: JobStore, task_messages: TaskMessages, pixels: np.ndarray, count: int) -> list[float]:
    """Seconds each of ``count`` admissions (a one-image job and its message) took, one after another."""
    took = []
    for _ in range(count):
        job_id = str(uuid.uuid4())
        inputs = {mnist_contract.SIGNATURE_INPUT: pixels}
        envelope = task_messages.envelope(MODEL, [messages.JobInput(job_id, inputs, None, BULK)], BULK)
        started = time.perf_counter()
        store.admit([(job_id, ["digit.png"])], model=MODEL, priority=BULK, enqueue=envelope)
        took.append(time.perf_counter() - started)
    return took


def main(argv: list[str] | None = None) -> int:
    parser = opening.parser("bench.replication", __doc__)
    parser.add_argument("--admissions", type=int, default=2000, help="admissions per block (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="blocks per setting (default 3)")
    args = parser.parse_args(argv)
    pixels = np.random.default_rng(0).integers(0, 255, (1, mnist_contract.N_INPUT), dtype=np.uint8)
    took: dict[int, list[float]] = {0: [], 1: []}
    with primary_and_replica(Path(tempfile.mkdtemp(prefix="inferq-replication-"))) as (primary, _):
        settings = Settings(redis_url=primary, max_queue_depth=10_000_000)
        client = redis.Redis.from_url(primary)
        task_messages = TaskMessages(make_celery(settings), settings)
        stores = {replicas: JobStore(client, result_ttl_s=60, depth_limits=settings.depth_limits,
                                     replicas=replicas, replica_timeout_ms=settings.redis_replica_ack_timeout_ms)
                  for replicas in took}
        for store in stores.values():  # warm up: scripts loaded, connection open, replicas counted
            admission_latencies(store, task_messages, pixels, 100)
        for _ in range(args.rounds):
            for replicas, store in stores.items():
                took[replicas] += admission_latencies(store, task_messages, pixels, args.admissions)
    summary = {}
    for replicas, seconds in took.items():
        cuts = statistics.quantiles(seconds, n=100)
        summary[replicas] = {"p50_us": round(cuts[49] * 1e6), "p90_us": round(cuts[89] * 1e6),
                             "p99_us": round(cuts[98] * 1e6), "admissions": len(seconds)}
        print(f"REDIS_MIN_REPLICAS_ACKED={replicas}: p50 {cuts[49] * 1e6:.0f} µs, p90 {cuts[89] * 1e6:.0f} µs, "
              f"p99 {cuts[98] * 1e6:.0f} µs over {len(seconds)} admissions")
    print(json.dumps({"admission_latency": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
