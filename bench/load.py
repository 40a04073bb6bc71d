"""Load generators: one threaded generator that every thread-driven load is a use of
(:class:`ThreadedLoad`, each thread posting over a :class:`Poster`), wrk for sync requests, and bulk
jobs from threads.

Its users: :func:`bulk` here, ``bench.open_loop.OpenLoop`` (requests due on a schedule),
``bench.mixed.BulkProducer`` (bulk jobs until stopped), and the tests' ``tests.support.http_load``
(every answer remembered) and reliability load (through the API app's test client instead of HTTP).
"""

from __future__ import annotations

import dataclasses
import http.client
import itertools
import json
import re
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.bodies import MULTIPART, idx_file, multipart, png

SCRIPT = Path(__file__).with_name("recognize.lua")


@dataclasses.dataclass(frozen=True)
class Reply:
    """What one POST of a :class:`Poster` got."""

    #: The HTTP status; 0 when no answer came (the connection failed; the next post opens another).
    status: int
    body: bytes
    #: The answer's headers (``.get(name)``, in any case); empty when none came.
    headers: Mapping[str, str]
    #: When the request was sent and when its answer was read, by time.monotonic().
    sent: float
    at: float


class Poster:
    """One keep-alive HTTP connection to ``base_url`` that a thread posts over, opened again after a
    failure."""

    def __init__(self, base_url: str, timeout_s: float = 60.0) -> None:
        self._address = urllib.parse.urlsplit(base_url)
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, headers: Mapping[str, str] = MULTIPART) -> Reply:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._address.hostname, self._address.port,
                                                          timeout=self._timeout_s)
        sent = time.monotonic()
        try:
            self._connection.request("POST", path, body, dict(headers))
            response = self._connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.reset()
            return Reply(0, b"", {}, sent, time.monotonic())
        return Reply(response.status, raw, response.headers, sent, time.monotonic())

    def reset(self) -> None:
        """Close the connection: the next post opens another."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class ThreadedLoad:
    """Threads that take turns at sending until stopped, or until their lane's turns run out.

    ``lanes`` names each thread's lane (its kind of request: "sync", "async", ...); a lane's threads
    share one count of turns, so that turn ``n`` is sent once whichever thread is free, and
    ``limits`` caps a lane's turns (none: until stopped). Each thread sends with a client of its own
    (:meth:`connect`: a :class:`Poster` to ``base_url`` unless a user says otherwise); a user says
    what a turn sends and records in :meth:`send`, under :attr:`lock`, and waits on :attr:`stopping`
    (``self.stopping.wait(s)``) wherever it pauses, so that a stop is not held up.

    ``with load: ...`` starts the threads and stops them; :meth:`finish` waits instead for limited
    lanes to run out of turns.
    """

    def __init__(self, lanes: Sequence[str], base_url: str | None = None, *, timeout_s: float = 60.0,
                 limits: Mapping[str, int] | None = None, join_s: float = 60.0) -> None:
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._join_s = join_s
        self._limits = dict(limits or {})
        self._turns = {lane: itertools.count() for lane in lanes}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(lane,), daemon=True) for lane in lanes]

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(self._join_s)

    def finish(self) -> None:
        """Wait until every thread has sent its lane's last turn (every lane limited)."""
        for thread in self._threads:
            thread.join()

    def connect(self) -> Any:
        """A thread's own client, made in that thread."""
        assert self._base_url is not None, "give a base_url, or a connect of your own"
        return Poster(self._base_url, self._timeout_s)

    def send(self, lane: str, turn: int, client: Any) -> None:
        raise NotImplementedError

    def _next_turn(self, lane: str) -> int | None:
        with self.lock:
            turn = next(self._turns[lane])
        limit = self._limits.get(lane)
        return None if limit is not None and turn >= limit else turn

    def _run(self, lane: str) -> None:
        client = self.connect()
        while not self.stopping.is_set() and (turn := self._next_turn(lane)) is not None:
            self.send(lane, turn, client)


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


def wrk_command(base_url: str, connections: int, seconds: float, bodies: list[Path], *script_args: str,
                threads: int = 2, latency: bool = True) -> list[str]:
    """wrk running ``recognize.lua`` over ``bodies`` for ``seconds``; ``script_args``: the script's own
    (``path=...``, ``pace=...``)."""
    return ["wrk", "--threads", str(threads), "--connections", str(connections), "--duration", f"{seconds:g}s",
            "--timeout", "10s", *(["--latency"] if latency else []), "--script", str(SCRIPT),
            f"{base_url}/recognize", "--", *script_args, *map(str, bodies)]


def wrk_result(output: str) -> dict:
    """The figures ``recognize.lua`` printed (``WRK_RESULT {...}``)."""
    match = re.search(r"^WRK_RESULT (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    return json.loads(match.group(1))


def wrk(base_url: str, concurrency: int, seconds: float, bodies: list[Path], path: str = "/recognize") -> SyncPoint:
    command = wrk_command(base_url, concurrency, seconds, bodies, f"path={path}", threads=min(concurrency, 2))
    result = wrk_result(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
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
    started = time.perf_counter()
    submitted = _Submitted(base_url, bodies, jobs, submitters)
    submitted.start()
    submitted.finish()
    wrong = _wait_done(urllib.parse.urlsplit(base_url), submitted.job_ids)
    seconds = time.perf_counter() - started
    return BulkResult(upload, jobs, jobs * per_job, seconds, jobs * per_job / seconds, wrong)


class _Submitted(ThreadedLoad):
    """``jobs`` bulk jobs posted from ``submitters`` threads, each job's id and expected labels kept."""

    def __init__(self, base_url: str, bodies: list[tuple[bytes, list[int]]], jobs: int, submitters: int) -> None:
        super().__init__(["jobs"] * submitters, base_url, limits={"jobs": jobs})
        self._bodies = bodies
        self.job_ids: list[tuple[str, list[int]]] = []

    def send(self, lane: str, turn: int, poster: Poster) -> None:
        body, expected = self._bodies[turn % len(self._bodies)]
        reply = poster.post("/jobs", body)
        payload = orjson.loads(reply.body) if reply.body else None
        if reply.status != 202:
            raise RuntimeError(f"POST /jobs answered {reply.status}: {payload}")
        with self.lock:
            self.job_ids.append((payload["job_id"], expected))


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
