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
import orjson

from bench.bodies import BOUNDARY, idx_file, multipart, png

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
    #: CPU milliseconds the front end (API or gRPC process) spent an answer, where measured.
    cpu_ms_per_request: float | None = None


def wrk(base_url: str, concurrency: int, seconds: float, bodies: list[Path], path: str = "/recognize") -> SyncPoint:
    command = ["wrk", "--threads", str(min(concurrency, 2)), "--connections", str(concurrency),
               "--duration", f"{seconds:g}s", "--timeout", "10s", "--latency",
               "--script", str(SCRIPT), f"{base_url}/recognize", "--", f"path={path}", *map(str, bodies)]
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
    upload: str
    jobs: int
    images: int
    seconds: float
    images_per_s: float
    wrong_labels: int


def bulk(base_url: str, images: np.ndarray, labels: np.ndarray, jobs: int, per_job: int, upload: str,
         submitters: int = 4) -> BulkResult:
    """``jobs`` async jobs of ``per_job`` images: images per second until the last one is done.

    ``upload`` is "png" (one PNG file a field, decoded one by one by the API) or "idx" (one IDX file
    of all the job's images, the bulk format).
    """
    bodies = []
    for start in range(0, 4 * per_job, per_job):
        indexes = range(start, start + per_job)
        if upload == "png":
            files = [("image", f"{i}_{labels[i]}.png", png(images[i])) for i in indexes]
        else:
            files = [("images", "batch.idx", idx_file(images[start:start + per_job]))]
        bodies.append((multipart(files), [int(labels[i]) for i in indexes]))
    address = urllib.parse.urlsplit(base_url)
    job_ids: list[tuple[str, list[int]]] = []
    lock = threading.Lock()

    def submit(share: range) -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        for n in share:
            body, expected = bodies[n % len(bodies)]
            connection.request("POST", "/jobs", body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
            answer = connection.getresponse()
            payload = orjson.loads(answer.read())
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
    return BulkResult(upload, jobs, jobs * per_job, seconds, jobs * per_job / seconds, wrong)


def _wait_done(address: urllib.parse.SplitResult, job_ids: list[tuple[str, list[int]]],
               timeout_s: float = 600) -> int:
    """Wait for every job; its labels checked. Jobs are answered in about the order they were sent,
    so the last is polled until done, then each checked (and polled again if it is not)."""
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    deadline = time.monotonic() + timeout_s
    wrong = 0
    for job_id, expected in [job_ids[-1], *job_ids[:-1]]:
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} not done after {timeout_s:g} s")
            connection.request("GET", f"/jobs/{job_id}")
            job = orjson.loads(connection.getresponse().read())
            if job["status"] == "done":
                got = [result["labels"][0] for result in job["result"]["results"]]
                wrong += sum(a != b for a, b in zip(got, expected, strict=True))
                break
            if job["status"] == "failed":
                raise RuntimeError(f"job {job_id} failed: {job['error']}")
            time.sleep(0.005)  # polling interval of a client waiting for its jobs
    return wrong
