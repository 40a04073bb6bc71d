"""Load generators: wrk for sync requests, threads for bulk jobs, direct sends for a queue drain."""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

from bench.bodies import BOUNDARY, multipart, png

SCRIPT = Path(__file__).with_name("recognize.lua")


@dataclasses.dataclass
class SyncPoint:
    concurrency: int
    answered: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    wrong_labels: int
    mean_batch: float | None = None


def wrk(base_url: str, concurrency: int, seconds: float, bodies: list[Path]) -> SyncPoint:
    command = ["wrk", "--threads", str(min(concurrency, 2)), "--connections", str(concurrency),
               "--duration", f"{seconds:g}s", "--timeout", "10s", "--latency",
               "--script", str(SCRIPT), f"{base_url}/recognize", "--", *map(str, bodies)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^WRK_RESULT (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    result = json.loads(match.group(1))
    return SyncPoint(
        concurrency=concurrency,
        answered=result["answered"],
        rps=result["answered"] / result["duration_s"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        errors=result["status_errors"] + result["socket_errors"] + result["timeouts"],
        wrong_labels=result["wrong_labels"],
    )


@dataclasses.dataclass
class BulkResult:
    jobs: int
    images: int
    seconds: float
    images_per_s: float
    wrong_labels: int


def bulk(base_url: str, images: np.ndarray, labels: np.ndarray, jobs: int, per_job: int,
         submitters: int = 4) -> BulkResult:
    """``jobs`` async jobs of ``per_job`` images: images per second until the last one is done."""
    bodies = []
    for start in range(0, 4 * per_job, per_job):
        indexes = range(start, start + per_job)
        bodies.append((multipart([(f"{i}_{labels[i]}.png", png(images[i])) for i in indexes]),
                       [int(labels[i]) for i in indexes]))
    address = urllib.parse.urlsplit(base_url)
    job_ids: list[tuple[str, list[int]]] = []
    lock = threading.Lock()

    def submit(share: range) -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        for n in share:
            body, expected = bodies[n % len(bodies)]
            connection.request("POST", "/jobs", body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
            answer = connection.getresponse()
            payload = json.loads(answer.read())
            if answer.status != 202:
                raise RuntimeError(f"POST /jobs answered {answer.status}: {payload}")
            with lock:
                job_ids.append((payload["job_id"], expected))

    started = time.perf_counter()
    threads = [threading.Thread(target=submit, args=(range(i, jobs, submitters),)) for i in range(submitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wrong = _wait_done(address, job_ids)
    seconds = time.perf_counter() - started
    return BulkResult(jobs, jobs * per_job, seconds, jobs * per_job / seconds, wrong)


def _wait_done(address: urllib.parse.SplitResult, job_ids: list[tuple[str, list[int]]],
               timeout_s: float = 600) -> int:
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    deadline = time.monotonic() + timeout_s
    wrong = 0
    for job_id, expected in job_ids:
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} not done after {timeout_s:g} s")
            connection.request("GET", f"/jobs/{job_id}")
            job = json.loads(connection.getresponse().read())
            if job["status"] == "done":
                got = [result["labels"][0] for result in job["result"]["results"]]
                wrong += sum(a != b for a, b in zip(got, expected, strict=True))
                break
            if job["status"] == "failed":
                raise RuntimeError(f"job {job_id} failed: {job['error']}")
            time.sleep(0.01)  # polling interval of a client waiting for its jobs
    return wrong
