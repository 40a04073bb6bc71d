"""Interactive requests beside a bulk backlog, with and without priorities.

A bulk producer keeps the bulk queue at its limit for the whole measurement, as an offline scorer
would: jobs of 1,024 images (one IDX file each), a 503 retried after its ``Retry-After``. Beside it
wrk sends sync ``POST /recognize`` from 16 clients. Four measurements on one running system:

- interactive alone (no backlog): the yardstick for its p99;
- bulk alone: images/s with the queue at its limit;
- mixed, with priorities: the interactive requests at their default priority;
- mixed, without priorities: the same requests sent as bulk work (``?priority=bulk``), as if one
  queue served everything in arrival order.

Targets: interactive p99 mixed at most 2x alone, no interactive errors, bulk at least 80% of bulk
alone.

wrk's sixteen clients are a closed loop that saturates the API: what they measure is the API's
own queueing, and a slow answer holds back the next request (coordinated omission). So the run
also measures the yardstick the issue asks for: interactive requests at a fixed open-loop rate
that uses a small share of the box (``bench.open_loop``, latency from each request's due time),
idle and beside the saturating bulk producer, both before the wrk measurements. Its goals:
interactive p99 at most 2x its idle p99 + 5 ms, no failure, bulk at least 75% of bulk alone.

A producer that honours ``Retry-After`` (whole seconds, at least one) keeps the queue at its limit
only if the limit holds more than a second of the workers' bulk work: below that, the queue runs dry
while every producer waits, and "bulk alone" measures the producer, not the system. So the system
measured here queues up to MIXED_QUEUE_DEPTH bulk images, and each bulk measurement reports the
share of its time the bulk queue stood empty: the premise holds where that share is near zero.

Each open-loop measurement also splits its requests' time by stage (``OpenLoop.stages``): where
an interactive request waits beside bulk work.

Run by ``make bench`` or alone: ``python -m bench.mixed [--quick] [--rate N]``, which also prints the cores
the API, the worker and Redis took in each measurement (``bench.cpu``): the goals ask both lanes to
keep most of their rate alone, which they can only where their costs fit the machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import redis

from bench import opening, systems
from bench.bodies import MULTIPART, idx_file, multipart, png
from bench.cpu import CpuMeter, Roles
from bench.load import Poster, SyncPoint, ThreadedLoad, wrk
from bench.open_loop import OpenLoop, OpenLoopResult
from inferq import keys
from inferq.priorities import BULK

JOB_IMAGES = 1024
PRODUCERS = 4
CLIENTS = 16
#: MAX_QUEUE_DEPTH of the system measured: a few seconds of the original MLP's bulk rate on a small
#: machine, so that producers waiting out a Retry-After find it still busy (what that holds in Redis:
#: the README, on sizing MAX_QUEUE_DEPTH).
MIXED_QUEUE_DEPTH = 400_000
#: How often the bulk queue's depth is sampled during a measurement.
SAMPLE_INTERVAL_S = 0.02
#: The open-loop yardstick's interactive requests a second: a small share of what the box answers.
OPEN_LOOP_RATE = 20.0


class BulkProducer(ThreadedLoad):
    """Threads that keep posting bulk jobs, each retrying its 503s (and a tenant's 429s) after
    ``Retry-After``; ``headers``: sent with each (a tenant's key); ``pngs``: each image a PNG part of
    its own (what the API parses and decodes image by image) instead of one IDX file."""

    def __init__(self, base_url: str, images: np.ndarray, threads: int = PRODUCERS,
                 headers: dict[str, str] | None = None, *, pngs: bool = False) -> None:
        super().__init__(["bulk"] * threads, base_url)
        self._headers = {**MULTIPART, **(headers or {})}
        self._body = (multipart([("image", f"{i}.png", png(image)) for i, image in enumerate(images[:JOB_IMAGES])])
                      if pngs else multipart([("images", "scoring.idx", idx_file(images[:JOB_IMAGES]))]))
        self.accepted: list[str] = []
        self.refused = 0

    def send(self, lane: str, turn: int, poster: Poster) -> None:
        reply = poster.post("/jobs", self._body, self._headers)
        if reply.status == 202:
            with self.lock:
                self.accepted.append(reply.headers.get("Location").rsplit("/", 1)[1])
        elif reply.status in (429, 503):
            with self.lock:
                self.refused += 1
            self.stopping.wait(float(reply.headers.get("Retry-After", "1")))
        else:
            raise RuntimeError(f"POST /jobs answered {reply.status}: {reply.body[:200]!r}")


class EmptyQueueShare:
    """The share of a block's time the bulk queue stood empty, sampled from a thread of its own:
    ``with EmptyQueueShare(client) as share: ...; share.fraction``."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._stop = threading.Event()
        #: The bulk queue's depth at each sample, in images.
        self.samples: list[int] = []
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.fraction = 0.0

    def __enter__(self) -> EmptyQueueShare:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.fraction = sum(depth == 0 for depth in self.samples) / len(self.samples) if self.samples else 0.0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append(_queued_bulk(self._client))
            self._stop.wait(SAMPLE_INTERVAL_S)


@dataclasses.dataclass
class Window:
    started: float
    ended: float


def bulk_images_per_s(client: redis.Redis, job_ids: list[str], window: Window) -> float:
    """Images of the bulk jobs that finished within ``window``, per second."""
    with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "finished_at", "n")
        records = pipe.execute()
    images = sum(int(n) for finished, n in records
                 if finished is not None and window.started <= float(finished) <= window.ended)
    return images / (window.ended - window.started)


def wait_full(client: redis.Redis, limit: int, timeout_s: float = 60) -> None:
    """Until the bulk queue is within one job of its limit."""
    deadline = time.monotonic() + timeout_s
    while _queued_bulk(client) < limit - JOB_IMAGES:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bulk producer did not fill the queue to {limit} images in {timeout_s:g} s")
        time.sleep(0.05)


def wait_drained(client: redis.Redis, timeout_s: float = 120) -> None:
    """Until the backlog left behind is answered, so that what runs next starts on an empty queue."""
    deadline = time.monotonic() + timeout_s
    while _queued_bulk(client) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bulk backlog was not answered in {timeout_s:g} s")
        time.sleep(0.1)


def _queued_bulk(client: redis.Redis) -> int:
    """Bulk images queued for the model the system serves (``bench.systems``)."""
    return int(client.get(keys.queued_images(systems.SERVED_MODEL, BULK)) or 0)


@dataclasses.dataclass
class MixedResult:
    interactive_alone: SyncPoint
    bulk_alone_images_per_s: float
    with_priorities: SyncPoint
    with_priorities_bulk_images_per_s: float
    without_priorities: SyncPoint
    without_priorities_bulk_images_per_s: float
    bulk_refusals: int
    #: Cores each role took, by measurement ("interactive alone", ...), where they were measured.
    cores: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    #: The share of each bulk measurement's time that the bulk queue stood empty.
    bulk_queue_empty: dict[str, float] = dataclasses.field(default_factory=dict)
    #: The open-loop yardstick: interactive requests at a fixed rate, idle and beside bulk, and the
    #: bulk rate beside them (where measured).
    open_loop_idle: OpenLoopResult | None = None
    open_loop_mixed: OpenLoopResult | None = None
    open_loop_bulk_images_per_s: float | None = None
    #: Each open-loop measurement's requests, stage by stage (``OpenLoop.stages``).
    open_loop_stages: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)

    def goals(self) -> dict[str, bool]:
        goals = {
            "interactive p99 at most 2x alone": self.with_priorities.p99_ms <= 2 * self.interactive_alone.p99_ms,
            "no interactive errors": self.with_priorities.errors == 0,
            "bulk at least 80% of alone":
                self.with_priorities_bulk_images_per_s >= 0.8 * self.bulk_alone_images_per_s,
        }
        if self.open_loop_idle is not None and self.open_loop_mixed is not None:
            goals.update({
                "open-loop interactive p99 at most 2x idle + 5 ms":
                    self.open_loop_mixed.p99_ms <= 2 * self.open_loop_idle.p99_ms + 5,
                "no open-loop interactive failure": self.open_loop_mixed.errors == 0,
                "bulk beside open-loop interactive at least 75% of alone":
                    (self.open_loop_bulk_images_per_s or 0) >= 0.75 * self.bulk_alone_images_per_s,
            })
        return goals


def mixed(base_url: str, redis_url: str, bulk_limit: int, images: np.ndarray, bodies: list[Path],
          seconds: float, roles: Roles | None = None, rate: float = OPEN_LOOP_RATE) -> MixedResult:
    """``roles``: the system's processes by role, to measure the cores each takes (none: not measured);
    ``rate``: the open-loop yardstick's interactive requests a second."""
    client = redis.Redis.from_url(redis_url)
    cores: dict[str, dict[str, float]] = {}
    empty: dict[str, float] = {}

    @contextlib.contextmanager
    def measured(name: str, bulk: bool = True) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            meter = stack.enter_context(CpuMeter(roles)) if roles is not None else None
            share = stack.enter_context(EmptyQueueShare(client)) if bulk else None
            yield
        if meter is not None:
            cores[name] = meter.cores
        if share is not None:
            empty[name] = share.fraction

    wrk(base_url, CLIENTS, 2, bodies)  # warm up: the yardstick is the warm system, not its first calls
    with measured("interactive alone", bulk=False):
        alone = wrk(base_url, CLIENTS, seconds, bodies)
    with measured("open-loop interactive alone", bulk=False), OpenLoop(base_url, rate, bodies) as idle:
        time.sleep(seconds)
    with BulkProducer(base_url, images) as producer:
        wait_full(client, bulk_limit)
        window = Window(time.time(), time.time() + seconds)
        with measured("bulk alone"):
            time.sleep(seconds)  # the bulk producer alone, the queue at its limit
        bulk_alone = bulk_images_per_s(client, list(producer.accepted), window)

        started = time.time()
        with measured("open-loop interactive beside bulk"), OpenLoop(base_url, rate, bodies) as beside:
            time.sleep(seconds)
        open_loop_bulk = bulk_images_per_s(client, list(producer.accepted), Window(started, time.time()))

        started = time.time()
        with measured("mixed, with priorities"):
            prioritised = wrk(base_url, CLIENTS, seconds, bodies)
        prioritised_bulk = bulk_images_per_s(client, list(producer.accepted), Window(started, time.time()))

        wait_full(client, bulk_limit)
        started = time.time()
        with measured("mixed, without priorities"):
            unprioritised = wrk(base_url, CLIENTS, seconds, bodies, path=f"/recognize?priority={BULK}")
        unprioritised_bulk = bulk_images_per_s(client, list(producer.accepted), Window(started, time.time()))
    wait_drained(client)
    stages = {"open loop alone": idle.stages(client), "open loop beside bulk": beside.stages(client)}
    return MixedResult(alone, bulk_alone, prioritised, prioritised_bulk, unprioritised, unprioritised_bulk,
                       producer.refused, cores, empty, idle.result(), beside.result(), open_loop_bulk, stages)


def table(result: MixedResult) -> str:
    rows = [
        ("interactive alone", result.interactive_alone, None),
        ("bulk alone", None, result.bulk_alone_images_per_s),
        ("mixed, with priorities", result.with_priorities, result.with_priorities_bulk_images_per_s),
        ("mixed, without priorities", result.without_priorities, result.without_priorities_bulk_images_per_s),
    ]
    lines = ["| run | interactive req/s | p50 ms | p99 ms | errors | bulk images/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, sync, bulk in rows:
        interactive = (f"{sync.rps:,.0f} | {sync.p50_ms:.1f} | {sync.p99_ms:.1f} | {sync.errors}" if sync
                       else "– | – | – | –")
        lines.append(f"| {name} | {interactive} | {f'{bulk:,.0f}' if bulk is not None else '–'} |")
    if result.open_loop_idle is not None and result.open_loop_mixed is not None:
        beside_bulk = result.open_loop_bulk_images_per_s
        for name, point, bulk in (("open loop alone", result.open_loop_idle, None),
                                  ("open loop beside bulk", result.open_loop_mixed, beside_bulk)):
            lines.append(f"| {name}, {point.rate_per_s:g}/s | {point.rate_per_s:g} | {point.p50_ms:.1f} | "
                         f"{point.p99_ms:.1f} | {point.errors} | {f'{bulk:,.0f}' if bulk is not None else '–'} |")
    goals = ", ".join(f"{goal}: {'met' if met else 'NOT met'}" for goal, met in result.goals().items())
    empty = ", ".join(f"{name} {share:.0%}" for name, share in result.bulk_queue_empty.items())
    return "\n".join([*lines, "", f"Goals: {goals}.", *([f"Bulk queue empty: {empty} of the time."] if empty else []),
                      *_cores_table(result.cores), *stages_table(result.open_loop_stages)])


def stages_table(stages: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Each measurement's interactive requests by stage (``OpenLoop.stages``): p50 / p99 ms."""
    if not stages:
        return []
    names = list(next(iter(stages.values())))

    def cells(by_stage: dict[str, dict[str, float]]) -> str:
        return " | ".join(f"{by_stage[name]['p50_ms']:.1f} / {by_stage[name]['p99_ms']:.1f}" for name in names)

    return ["", f"| open-loop run: p50 / p99 ms | {' | '.join(names)} |", f"| --- |{' ---: |' * len(names)}",
            *(f"| {run} | {cells(by_stage)} |" for run, by_stage in stages.items())]


def _cores_table(cores: dict[str, dict[str, float]]) -> list[str]:
    if not cores:
        return []
    roles = list(next(iter(cores.values())))
    return ["", f"| run | cores: {' | '.join(roles)} | all |", f"| --- |{' ---: |' * (len(roles) + 1)}",
            *(f"| {name} | {' | '.join(f'{by_role[role]:.2f}' for role in roles)} | {sum(by_role.values()):.2f} |"
              for name, by_role in cores.items())]


def _local_redis(redis_url: str) -> dict[str, list[int]]:
    """Redis's process, where it runs on this machine (its pid means nothing elsewhere)."""
    if urllib.parse.urlsplit(redis_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return {}
    return {"redis": [int(redis.Redis.from_url(redis_url).info("server")["process_id"])]}


def main(argv: list[str] | None = None) -> int:
    parser = opening.parser("bench.mixed", __doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds a measurement")
    parser.add_argument("--rate", type=float, default=OPEN_LOOP_RATE, metavar="N",
                        help=f"the open-loop yardstick's interactive requests a second (default {OPEN_LOOP_RATE:g})")
    args = parser.parse_args(argv)
    if (found := opening.trained("bench.mixed")) is None:
        return 1
    model_dir, setup = found
    bodies = setup.bodies()
    load_before = os.getloadavg()
    with opening.service(setup.work, model_dir, MAX_QUEUE_DEPTH=MIXED_QUEUE_DEPTH) as (redis_url, running):
        result = mixed(running.base_url, redis_url, MIXED_QUEUE_DEPTH, setup.images, bodies,
                       4 if args.quick else 10, roles=lambda: {**running.pids(), **_local_redis(redis_url)},
                       rate=args.rate)
    print(f"load average (1, 5, 15 min): before {load_before}, after {os.getloadavg()}")
    print(table(result))
    print(json.dumps(dataclasses.asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
