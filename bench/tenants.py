"""Two bulk tenants sharing the bulk lane, beside interactive load at a fixed open-loop rate.

Tenants ``flood`` and ``small`` of equal weight each submit 1,024-image bulk jobs, ``flood`` from
ten times the producers, each kept under its own ``max_queued_items`` (half the lane's limit) by
429s it retries after their ``Retry-After``. Interactive requests (``bench.open_loop``) go at a
fixed rate that uses a small share of the box, their latency counted from each one's scheduled
send. Measurements on one running system:

- interactive alone (idle): its p50 and p99 at that rate, the yardstick;
- bulk of one tenant alone: images/s with its queue at its limit;
- both tenants flooding, nothing beside: each tenant's images/s and share while both have work, and
  their total, against one tenant alone (what sharing costs);
- both tenants flooding, interactive beside: the same, and interactive p99 (what bulk costs it).

Goals: each tenant at least 45% of the bulk rate while both have work; their total within 5% of one
tenant alone (and at least 75% of it with interactive load beside); interactive p99 at most 2x its
idle p99 + 5 ms, with no failure.

``python -m bench.tenants [--quick]``. ``make bench`` runs :func:`fair_share` instead (``--alternating
ROUNDS`` here): one tenant alone and both tenants, in turn, ROUNDS times in one process on one
running system, so that a shared machine's drift falls on both alike; it reports each tenant's
share while both had work and the two tenants' total against one alone, round by round, with the
spread of that ratio over the rounds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from bench import opening
from bench.mixed import BulkProducer, Window, stages_table
from bench.open_loop import OpenLoop, OpenLoopResult
from inferq import keys
from inferq.settings import Settings
from inferq.tenants import key_digest

#: The bulk lane's limit, and each tenant's (half of it): a few seconds of work each.
LANE_DEPTH = 200_000
TENANT_DEPTH = LANE_DEPTH // 2
FLOOD_PRODUCERS, SMALL_PRODUCERS = 10, 1
#: Interactive requests a second: a small share of what the box answers.
INTERACTIVE_RATE = 20.0
TENANTS = ("flood", "small")
#: The tenant of the interactive requests.
PEOPLE = "people"


def tenants_file(path: Path, depth: int = TENANT_DEPTH) -> Path:
    path.write_text(json.dumps({"tenants": [
        *({"name": name, "max_queued_items": depth, "keys": ["sha256:" + key_digest(f"key-{name}").hex()]}
          for name in TENANTS),
        {"name": PEOPLE, "keys": ["sha256:" + key_digest(f"key-{PEOPLE}").hex()]}]}))
    return path


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer key-{tenant}"}


def images_by_tenant(client: redis.Redis, job_ids: dict[str, list[str]], window: Window) -> dict[str, float]:
    """Images per second of each tenant's jobs that finished within ``window``."""
    rates = {}
    for tenant, ids in job_ids.items():
        with client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(keys.job(job_id), "finished_at", "n")
            records = pipe.execute()
        images = sum(int(n) for finished, n in records
                     if finished is not None and window.started <= float(finished) <= window.ended)
        rates[tenant] = images / (window.ended - window.started)
    return rates


class WorkShare:
    """The share of a block's time each tenant had work queued (sampled)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._stop = threading.Event()
        self._samples: list[list[int]] = []
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.had_work: dict[str, float] = {}

    def __enter__(self) -> WorkShare:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        count = max(1, len(self._samples))
        self.had_work = {tenant: sum(sample[i] > 0 for sample in self._samples) / count
                         for i, tenant in enumerate(TENANTS)}

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._samples.append([int(count or 0) for count in
                                  self._client.mget([keys.tenant_queued(tenant) for tenant in TENANTS])])
            self._stop.wait(0.05)


def wait_queued(client: redis.Redis, tenants: tuple[str, ...], timeout_s: float = 120, *,
                depth: int = TENANT_DEPTH) -> None:
    """Until each tenant has at least half its limit queued."""
    deadline = time.monotonic() + timeout_s
    while any(int(client.get(keys.tenant_queued(t)) or 0) < depth // 2 for t in tenants):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the producers did not queue half of {depth} images each in {timeout_s:g} s")
        time.sleep(0.05)


def wait_accepted(producers: dict[str, BulkProducer], jobs: int, timeout_s: float = 120) -> None:
    """Until each tenant's producers have had ``jobs`` jobs accepted."""
    deadline = time.monotonic() + timeout_s
    while any(len(producer.accepted) < jobs for producer in producers.values()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the producers did not have {jobs} jobs each accepted in {timeout_s:g} s")
        time.sleep(0.05)


def wait_drained(client: redis.Redis, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while any(int(client.get(keys.tenant_queued(t)) or 0) for t in TENANTS):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the backlog was not answered in {timeout_s:g} s")
        time.sleep(0.1)


@dataclasses.dataclass
class TenantsResult:
    interactive_idle: OpenLoopResult
    bulk_alone_images_per_s: float
    #: Both tenants flooding, nothing beside.
    shared_by_tenant_images_per_s: dict[str, float]
    #: Both tenants flooding, interactive load beside.
    by_tenant_images_per_s: dict[str, float]
    interactive_with_tenants: OpenLoopResult
    had_work: dict[str, float]
    #: The interactive requests idle and beside both tenants, stage by stage (``OpenLoop.stages``).
    stages: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)

    @property
    def shared_images_per_s(self) -> float:
        return sum(self.shared_by_tenant_images_per_s.values())

    @property
    def total_images_per_s(self) -> float:
        return sum(self.by_tenant_images_per_s.values())

    def goals(self) -> dict[str, bool]:
        shared = self.shared_images_per_s or float("nan")
        total = self.total_images_per_s or float("nan")
        idle = self.interactive_idle.p99_ms
        shares = [*((rate, shared) for rate in self.shared_by_tenant_images_per_s.values()),
                  *((rate, total) for rate in self.by_tenant_images_per_s.values())]
        return {
            "each tenant >= 45% of bulk": all(rate >= 0.45 * whole for rate, whole in shares),
            "two tenants' bulk within 5% of one tenant alone": abs(shared - self.bulk_alone_images_per_s)
            <= 0.05 * self.bulk_alone_images_per_s,
            "bulk beside interactive >= 75% of alone": total >= 0.75 * self.bulk_alone_images_per_s,
            "interactive p99 <= 2x idle + 5 ms": self.interactive_with_tenants.p99_ms <= 2 * idle + 5,
            "no interactive failure": self.interactive_with_tenants.errors == 0,
        }


#: Each tenant's bulk producers while it floods.
PRODUCERS = {"flood": FLOOD_PRODUCERS, "small": SMALL_PRODUCERS}


@contextlib.contextmanager
def flooding(base_url: str, images, client: redis.Redis, tenants: tuple[str, ...],
             depth: int = TENANT_DEPTH, *, pngs: bool = False) -> Iterator[dict[str, BulkProducer]]:
    """``tenants``' bulk producers, each tenant with at least half its ``depth`` queued; ``pngs``:
    their jobs as a PNG part an image (``BulkProducer``)."""
    with contextlib.ExitStack() as stack:
        producers = {tenant: stack.enter_context(BulkProducer(base_url, images, PRODUCERS[tenant],
                                                              headers=auth(tenant), pngs=pngs))
                     for tenant in tenants}
        if pngs:
            # The API's decoding, not the worker, limits PNG jobs: their queue may never fill.
            wait_accepted(producers, 2)
        else:
            wait_queued(client, tenants, depth=depth)
        yield producers
    wait_drained(client)


def bulk_images_per_s(client: redis.Redis, producers: dict[str, BulkProducer], seconds: float) -> dict[str, float]:
    """Each flooding tenant's bulk images/s over the next ``seconds``."""
    window = Window(time.time(), time.time() + seconds)
    time.sleep(seconds)
    return images_by_tenant(client, {tenant: list(p.accepted) for tenant, p in producers.items()}, window)


def run(base_url: str, redis_url: str, images, bodies: list[Path], seconds: float,
        rate: float = INTERACTIVE_RATE, *, pngs: bool = False) -> TenantsResult:
    client = redis.Redis.from_url(redis_url)
    with OpenLoop(base_url, rate, bodies, headers=auth(PEOPLE)):
        time.sleep(2)  # warm up: the yardstick is the warm system, not its first calls
    with OpenLoop(base_url, rate, bodies, headers=auth(PEOPLE)) as idle:
        time.sleep(seconds)
    with flooding(base_url, images, client, ("flood",), pngs=pngs) as alone:
        bulk_alone = bulk_images_per_s(client, alone, seconds)["flood"]
    with flooding(base_url, images, client, TENANTS, pngs=pngs) as both:
        shared = bulk_images_per_s(client, both, seconds)
        with WorkShare(client) as share, OpenLoop(base_url, rate, bodies, headers=auth(PEOPLE)) as beside:
            by_tenant = bulk_images_per_s(client, both, seconds)
    stages = {"interactive alone": idle.stages(client), "two tenants flooding": beside.stages(client)}
    return TenantsResult(idle.result(), bulk_alone, shared, by_tenant, beside.result(), share.had_work, stages)


def interleaved(base_url: str, redis_url: str, images, seconds: float, rounds: int) -> list[tuple[float, float]]:
    """:func:`alternating`'s rounds as (one tenant alone, both tenants) bulk images/s."""
    return [(r.alone_images_per_s, r.both_images_per_s)
            for r in alternating(base_url, redis_url, images, seconds, rounds)]


@dataclasses.dataclass
class Round:
    """One round of :func:`alternating`: one tenant alone, then both."""

    #: Images/s of ``flood`` alone.
    alone_images_per_s: float
    #: Images/s of each tenant, both flooding.
    both_by_tenant_images_per_s: dict[str, float]
    #: The share of the both-tenants window in which each tenant had work queued (sampled).
    had_work: dict[str, float]

    @property
    def both_images_per_s(self) -> float:
        return sum(self.both_by_tenant_images_per_s.values())

    @property
    def ratio(self) -> float:
        """Both tenants' total against one tenant alone."""
        return self.both_images_per_s / self.alone_images_per_s if self.alone_images_per_s else float("nan")

    def shares(self) -> dict[str, float]:
        whole = self.both_images_per_s
        return {tenant: (rate / whole if whole else float("nan"))
                for tenant, rate in self.both_by_tenant_images_per_s.items()}


def alternating(base_url: str, redis_url: str, images, seconds: float, rounds: int, *,
                depth: int = TENANT_DEPTH) -> list[Round]:
    """As :func:`interleaved`, each tenant's images/s and when it had work kept: :class:`Round` each;
    ``depth``: each tenant's ``max_queued_items``, as its tenants file says."""
    client = redis.Redis.from_url(redis_url)
    measured = []
    for _ in range(rounds):
        with flooding(base_url, images, client, ("flood",), depth) as alone:
            one = bulk_images_per_s(client, alone, seconds)["flood"]
        with flooding(base_url, images, client, TENANTS, depth) as both, WorkShare(client) as share:
            two = bulk_images_per_s(client, both, seconds)
        measured.append(Round(one, two, share.had_work))
    return measured


def fair_share_goals(rounds: list[Round]) -> dict[str, bool]:
    """The issue's two bulk goals over every round: each tenant at least 45% while both have work
    (in the worst round), and the total within 5% of one tenant alone (the rounds' mean ratio)."""
    ratios = [r.ratio for r in rounds]
    mean = sum(ratios) / len(ratios)
    return {"each tenant >= 45% of bulk": all(share >= 0.45 for r in rounds for share in r.shares().values()),
            "two tenants' bulk within 5% of one tenant alone": abs(mean - 1) <= 0.05}


def fair_share_table(rounds: list[Round]) -> str:
    lines = ["| round | one tenant alone, images/s | both, images/s | flood | small | both / alone | "
             "had work (flood, small) |", "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for number, r in enumerate(rounds, 1):
        shares = r.shares()
        lines.append(f"| {number} | {r.alone_images_per_s:,.0f} | {r.both_images_per_s:,.0f} | "
                     f"{shares['flood']:.1%} | {shares['small']:.1%} | {r.ratio:.3f} | "
                     f"{r.had_work.get('flood', 0):.0%}, {r.had_work.get('small', 0):.0%} |")
    ratios = [r.ratio for r in rounds]
    mean = sum(ratios) / len(ratios)
    smallest = min(share for r in rounds for share in r.shares().values())
    goals = ", ".join(f"{goal}: {'met' if met else 'NOT met'}" for goal, met in fair_share_goals(rounds).items())
    return "\n".join([*lines, "", f"Both / alone over {len(rounds)} rounds: mean {mean:.3f}, spread "
                      f"{min(ratios):.3f} to {max(ratios):.3f}; the smaller tenant's least share {smallest:.1%}.",
                      f"Goals: {goals}."])


def fair_share(settings: Settings, *, quick: bool, job_images: int = 1024) -> dict | None:
    """``make bench``'s run: :func:`alternating` on a system of its own, printed; its figures, or
    None where there is no trained model to serve."""
    if (found := opening.trained("bench.tenants", settings)) is None:
        return None
    model_dir, setup = found
    # Quick: shallower queues, so that filling and draining them between windows takes little.
    rounds, seconds, depth = (2, 2.0, 64 * job_images) if quick else (4, 8.0, TENANT_DEPTH)
    path = tenants_file(setup.work / "tenants.json", depth)
    load_before = os.getloadavg()
    started = time.monotonic()
    try:
        with opening.service(setup.work, model_dir, MAX_QUEUE_DEPTH=LANE_DEPTH,
                             TENANTS_FILE=str(path)) as (redis_url, running):
            measured = alternating(running.base_url, redis_url, setup.images[:job_images], seconds, rounds,
                                   depth=depth)
    finally:
        shutil.rmtree(setup.work, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"bench.tenants: two bulk tenants of equal weight, flood {FLOOD_PRODUCERS} producers and small "
          f"{SMALL_PRODUCERS}, {job_images}-image jobs, each tenant's max_queued_items {depth:,}, "
          f"{seconds:g} s windows, {time.monotonic() - started:.0f} s in all; "
          f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    print(fair_share_table(measured))
    return {"rounds": [dataclasses.asdict(r) for r in measured], "goals": fair_share_goals(measured),
            "seconds": seconds, "depth": depth, "load_before": load_before, "load_after": load_after}


def table(result: TenantsResult) -> str:
    total = result.total_images_per_s
    lines = ["| run | interactive p50 ms | p99 ms | failed | bulk images/s |", "| --- | ---: | ---: | ---: | ---: |",
             f"| interactive alone, {result.interactive_idle.rate_per_s:g}/s open loop | "
             f"{result.interactive_idle.p50_ms:.1f} | {result.interactive_idle.p99_ms:.1f} | "
             f"{result.interactive_idle.errors} | – |",
             f"| bulk, one tenant alone | – | – | – | {result.bulk_alone_images_per_s:,.0f} |",
             f"| two tenants flooding (flood {FLOOD_PRODUCERS} producers, small {SMALL_PRODUCERS}) | – | – | – | "
             f"{result.shared_images_per_s:,.0f} |",
             f"| two tenants flooding (flood {FLOOD_PRODUCERS} producers, small {SMALL_PRODUCERS}), interactive "
             f"beside | {result.interactive_with_tenants.p50_ms:.1f} | {result.interactive_with_tenants.p99_ms:.1f} | "
             f"{result.interactive_with_tenants.errors} | {total:,.0f} |"]

    def shares(by_tenant: dict[str, float], whole: float) -> str:
        return ", ".join(f"{tenant} {rate:,.0f} images/s ({rate / whole:.0%})" for tenant, rate in by_tenant.items()
                         ) if whole else "none"

    had_work = ", ".join(f"{tenant} {share:.0%}" for tenant, share in result.had_work.items())
    goals = ", ".join(f"{goal}: {'met' if met else 'NOT met'}" for goal, met in result.goals().items())
    alone = shares(result.shared_by_tenant_images_per_s, result.shared_images_per_s)
    beside = shares(result.by_tenant_images_per_s, total)
    return "\n".join([*lines, "", f"By tenant, nothing beside: {alone}; interactive beside: {beside} (each had "
                      f"work queued: {had_work} of the time).", f"Goals: {goals}.",
                      *stages_table(result.stages)])


def main(argv: list[str] | None = None) -> int:
    parser = opening.parser("bench.tenants", __doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds a measurement")
    parser.add_argument("--rate", type=float, default=INTERACTIVE_RATE, metavar="N",
                        help=f"interactive requests a second (default {INTERACTIVE_RATE:g})")
    parser.add_argument("--job-images", type=int, default=1024, metavar="N",
                        help="images a bulk job (default 1,024): what one bulk message holds")
    parser.add_argument("--pngs", action="store_true",
                        help="bulk jobs as one PNG part an image (multipart) instead of one IDX file")
    parser.add_argument("--interleaved", type=int, metavar="ROUNDS", default=0,
                        help="instead: one tenant alone and both tenants, ROUNDS times in turn, nothing beside")
    parser.add_argument("--alternating", action="store_true",
                        help="instead: make bench's run (one tenant alone and both in turn, with shares)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.alternating:
        return 0 if fair_share(settings, quick=args.quick, job_images=args.job_images) is not None else 1
    if (found := opening.trained("bench.tenants", settings)) is None:
        return 1
    model_dir, setup = found
    bodies = setup.bodies()
    images = setup.images[:args.job_images]  # a bulk job is the producer's first JOB_IMAGES of these, at most
    path = tenants_file(setup.work / "tenants.json")
    load_before = os.getloadavg()
    with opening.service(setup.work, model_dir, MAX_QUEUE_DEPTH=LANE_DEPTH,
                         TENANTS_FILE=str(path)) as (redis_url, running):
        if args.interleaved:
            rounds = interleaved(running.base_url, redis_url, images, 4 if args.quick else 10, args.interleaved)
        else:
            result = run(running.base_url, redis_url, images, bodies, 4 if args.quick else 10, args.rate,
                         pngs=args.pngs)
    print(f"load average (1, 5, 15 min): before {load_before}, after {os.getloadavg()}")
    if args.interleaved:
        print("| round | one tenant alone, images/s | two tenants, images/s | two / one |")
        print("| ---: | ---: | ---: | ---: |")
        for number, (one, two) in enumerate(rounds, 1):
            print(f"| {number} | {one:,.0f} | {two:,.0f} | {two / one:.2f} |")
        return 0
    print(table(result))
    print(json.dumps(dataclasses.asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
