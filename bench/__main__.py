"""``python -m bench [--quick]``: inferq against the seed's architecture, on this machine.

Scenarios: sync ``POST /recognize`` with one image at several concurrencies on inferq, on the
seed's architecture (Flask + one session call a request) and on inferq with MAX_BATCH_SIZE=1;
bulk async jobs of 256 images; the client (``inferq score``) on the 10,000 test digits, beside
bulk; a worker draining a queue filled before it started. The sync sweeps of inferq and the
reference run under each HTTP server of ``--servers``, side by side. Load comes from wrk (Debian's
package), which costs far less CPU than the servers it drives.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench import report, systems
from bench.bodies import one_image_bodies, test_digits
from bench.client import client_score
from bench.drain import drain
from bench.load import SyncPoint, bulk, wrk
from bench.mixed import mixed
from bench.mixed import table as mixed_table
from inferq.model_contract import newest_version
from inferq.settings import API_SERVERS, Settings
from trainer import mnist_files

RESULTS = Path("bench/results")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a run of under two minutes")
    parser.add_argument("--servers", default=",".join(API_SERVERS),
                        help="HTTP servers to measure inferq and the reference under, side by side; the first "
                             "for every scenario, the others for the sync sweeps (default: %(default)s)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is missing; install it with `apt-get install wrk`", file=sys.stderr)
        return 1

    settings = Settings.from_env()
    data_dir = mnist_files.locate(Path(settings.mnist_data_dir))
    model_dir = settings.model_dir
    if newest_version(model_dir) is None:
        print(f"bench: no model in {model_dir}/; training one", flush=True)
        subprocess.run([sys.executable, "-m", "trainer", "--params", "config/model.json"], check=True,
                       env={**os.environ, "MNIST_DATA_DIR": str(data_dir)})

    quick = args.quick
    clients = [1, 64] if quick else [1, 16, 64, 128]
    seconds = 3 if quick else 10
    images, labels = test_digits(data_dir)
    work = Path(tempfile.mkdtemp(prefix="inferq-bench-"))
    bodies = one_image_bodies(images, labels, 200, work / "bodies")
    probe = bodies[0].read_bytes()

    servers = args.servers.split(",")
    sweeps: dict[str, list[SyncPoint]] = {}
    with systems.redis_server(work) as redis_url:
        with systems.inferq(redis_url, model_dir, API_SERVER=servers[0]) as base:
            sweeps["inferq"] = _sweep(base, clients, seconds, bodies)
            bulk_results = [bulk(base, images, labels, jobs=20 if quick else 80, per_job=256, upload="idx"),
                            bulk(base, images, labels, jobs=5 if quick else 20, per_job=256, upload="png")]
            client = client_score(base, images, labels, work)
            mixed_result = mixed(base, redis_url, settings.max_queue_depth, images, bodies, 4 if quick else 10)
        with systems.inferq(redis_url, model_dir, MAX_BATCH_SIZE=1, API_SERVER=servers[0]) as base:
            sweeps["inferq batch=1"] = _sweep(base, clients, seconds, bodies)
        drained = drain(redis_url, model_dir, images, count=1000 if quick else 5000, per_message=1)
        sweeps |= _other_servers_inferq(redis_url, model_dir, servers[1:], clients, seconds, bodies)
    with systems.seed_reference(model_dir, probe, servers[0]) as base:
        sweeps["seed reference"] = _sweep(base, clients, seconds, bodies)
    sweeps |= _other_servers_reference(model_dir, probe, servers[1:], clients, seconds, bodies)
    shutil.rmtree(work, ignore_errors=True)

    ours, seed, nobatch = (_by_clients(sweeps[name]) for name in ("inferq", "seed reference", "inferq batch=1"))
    summary = {
        "sync_rps_c64": round(ours[64].rps, 1),
        "seed_rps_c64": round(seed[64].rps, 1),
        "ratio_vs_seed": round(ours[64].rps / seed[64].rps, 2),
        "nobatch_rps_c64": round(nobatch[64].rps, 1),
        "mean_batch_c64": round(ours[64].mean_batch or 0, 1),
        "p99_ms_c64": round(ours[64].p99_ms, 1),
        "errors_c64": ours[64].errors,
        "p50_ms_c1": round(ours[1].p50_ms, 2),
        "seed_p50_ms_c1": round(seed[1].p50_ms, 2),
        "bulk_images_per_s": round(bulk_results[0].images_per_s),
        "bulk_png_images_per_s": round(bulk_results[1].images_per_s),
        "client_images_per_s": round(client.images_per_s),
        "client_vs_bulk": round(client.images_per_s / bulk_results[0].images_per_s, 2),
        "drain_messages_per_s": round(drained.messages_per_s),
        "mixed_interactive_p99_ms": round(mixed_result.with_priorities.p99_ms, 1),
        "mixed_interactive_alone_p99_ms": round(mixed_result.interactive_alone.p99_ms, 1),
        "mixed_bulk_vs_alone": round(mixed_result.with_priorities_bulk_images_per_s
                                     / mixed_result.bulk_alone_images_per_s, 2),
        "mixed_goals": mixed_result.goals(),
        "drain_mean_batch": round(drained.mean_batch, 1),
        "api_server": servers[0],
        "by_server": _by_server(sweeps, servers),
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    extras = [
        f"bulk ({result.upload}): {result.jobs} jobs x 256 images in {result.seconds:.2f} s = "
        f"{result.images_per_s:.0f} images/s ({result.wrong_labels} wrong labels)"
        for result in bulk_results
    ] + [
        f"client (inferq score): {client.images} images in {client.seconds:.2f} s = {client.images_per_s:.0f} "
        f"images/s beside bulk (idx) {bulk_results[0].images_per_s:.0f} images/s: "
        f"{client.images_per_s / bulk_results[0].images_per_s:.0%} ({client.wrong_labels} wrong labels, "
        f"{client.failed} failed)",
        f"drain: {drained.messages} one-image messages in {drained.seconds:.2f} s = "
        f"{drained.messages_per_s:.0f} messages/s, mean batch {drained.mean_batch:.1f}",
        f"HTTP server: {servers[0]} for inferq and the seed reference; <name>@<server> under <server>",
    ]
    print(report.table(sweeps, extras))
    print("\nInteractive requests beside a full bulk queue (bench.mixed):\n" + mixed_table(mixed_result))
    report.save({"when": stamp, "quick": quick, "sweeps": sweeps, "bulk": bulk_results, "client": client,
                 "drain": drained, "mixed": mixed_result, "summary": summary}, RESULTS / f"{stamp}.json")
    report.plot(sweeps, RESULTS / f"{stamp}.png")
    print(f"results: {RESULTS / stamp}.json, plot: {RESULTS / stamp}.png")
    print(json.dumps(summary))
    return 0


def _sweep(base: str, clients: list[int], seconds: float, bodies: list[Path]) -> list[SyncPoint]:
    wrk(base, 8, 1, bodies)  # warm up: connections, caches, first model calls
    points = []
    for concurrency in clients:
        before = _batch_totals(base)
        point = wrk(base, concurrency, seconds, bodies)
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


# --- HTTP servers side by side (--servers): the sync sweeps under each server past the first. ---

def _other_servers_inferq(redis_url: str, model_dir: str, servers: list[str], clients: list[int], seconds: float,
                          bodies: list[Path]) -> dict[str, list[SyncPoint]]:
    sweeps = {}
    for server in servers:
        with systems.inferq(redis_url, model_dir, API_SERVER=server) as base:
            sweeps[f"inferq@{server}"] = _sweep(base, clients, seconds, bodies)
    return sweeps


def _other_servers_reference(model_dir: str, probe: bytes, servers: list[str], clients: list[int], seconds: float,
                             bodies: list[Path]) -> dict[str, list[SyncPoint]]:
    sweeps = {}
    for server in servers:
        with systems.seed_reference(model_dir, probe, server) as base:
            sweeps[f"ref@{server}"] = _sweep(base, clients, seconds, bodies)
    return sweeps


def _by_server(sweeps: dict[str, list[SyncPoint]], servers: list[str]) -> dict[str, dict[str, float]]:
    """The headline figures under each server, inferq's and the reference's under the same one."""
    figures = {}
    for index, server in enumerate(servers):
        ours = _by_clients(sweeps["inferq" if index == 0 else f"inferq@{server}"])
        seed = _by_clients(sweeps["seed reference" if index == 0 else f"ref@{server}"])
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


def _by_clients(points: list[SyncPoint]) -> dict[int, SyncPoint]:
    return {point.concurrency: point for point in points}


if __name__ == "__main__":
    sys.exit(main())
