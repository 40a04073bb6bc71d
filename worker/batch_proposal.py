"""Settings for a model from what its calls and the queue cost on a host: the arithmetic of ``inferq tune``.

A worker serves a batch of ``b`` items in ``service(b) = call(b) + queue_per_batch + queue_per_item * b``
milliseconds (``worker.call_costs``, ``worker.queue_costs``), so it answers ``b / service(b)`` items
a second while it is kept busy. A host runs ``workers = (cores - api_cores) // intra_op_threads``
workers (at least one) of a thread setting, side by side; a setting of more threads than the cores
left to workers is measured and shown, not proposed (its threads would take the API's cores).

- ``throughput``: the smallest batch whose host rate is within ``tolerance`` of the best any measured
  batch and thread setting gives (a larger one adds latency, not throughput). A batch waits for more
  items no longer than a batch's fixed cost, the smallest call measured plus the queue's cost a
  batch: waiting longer costs more than running what came in a batch of its own, and a busy queue
  fills a batch without waiting. Nor longer than half the chosen call.
- ``p99``: at ``rate`` items a second spread over the workers, a batch of ``b`` takes
  ``(b - 1) / worker_rate`` to gather (its wait); an item then waits at worst for the batch ahead of
  it and its own, so ``p99 ~ wait + 2 * service(b)``, and the workers must stay below
  :data:`MAX_UTILISATION` busy. The largest batch that fits the target is chosen: it leaves the
  most room for bursts.

Every choice is explained in :attr:`Proposal.reasons`, which ``inferq tune`` prints. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

#: The share of its time a worker may be busy at the stated rate: past it, queues grow with bursts.
MAX_UTILISATION = 0.8
#: Host rates within this share of the best count as the best (``throughput``).
TOLERANCE = 0.05
#: The shortest wait proposed (ms): celery-batches' timer is not finer than this in practice.
MIN_WAIT_MS = 0.1

ThreadSetting = tuple[int, int]  # (intra-op threads, inter-op threads)


@dataclasses.dataclass(frozen=True)
class QueueOverhead:
    per_batch_ms: float
    per_item_ms: float


@dataclasses.dataclass(frozen=True)
class Candidate:
    threads: ThreadSetting
    batch: int
    call_ms: float
    service_ms: float
    workers: int
    #: Whether its threads fit in the cores left to workers (one thread always does).
    fits_host: bool = True

    @property
    def worker_rate(self) -> float:
        """Items a second one busy worker answers."""
        return self.batch * 1000 / self.service_ms

    @property
    def host_rate(self) -> float:
        return self.worker_rate * self.workers


@dataclasses.dataclass(frozen=True)
class Proposal:
    max_batch_size: int
    max_batch_wait_ms: float
    intra_op_threads: int
    inter_op_threads: int
    workers: int
    #: Items a second the host's workers answer, kept busy at this batch (the model and queue alone).
    host_rate: float
    #: The modelled p99 (ms) at the stated rate (``p99`` objective only).
    p99_ms: float | None
    #: Whether the target is met (``p99``: some batch fits it; ``throughput``: always).
    fits: bool
    reasons: tuple[str, ...]

    def config(self) -> dict[str, object]:
        """What goes in the model's config.json."""
        return {"max_batch_size": self.max_batch_size, "max_batch_wait_ms": self.max_batch_wait_ms}

    def env(self) -> dict[str, str]:
        """What is set per host, in the workers' environment."""
        return {"WORKERS": str(self.workers), "TF_INTRA_OP_THREADS": str(self.intra_op_threads),
                "TF_INTER_OP_THREADS": str(self.inter_op_threads)}


def workers_for(cores: int, api_cores: int, intra_op_threads: int) -> int:
    """Workers of this many intra-op threads that the cores left to workers hold (0 threads: all)."""
    threads = intra_op_threads or cores
    return max(1, (cores - api_cores) // max(threads, 1))


def candidates(curves: Mapping[ThreadSetting, Mapping[int, float]], queue: QueueOverhead, *, cores: int,
               api_cores: int) -> list[Candidate]:
    """Every measured (thread setting, batch) as a worker would serve it on this host."""
    found = []
    for threads, curve in curves.items():
        workers = workers_for(cores, api_cores, threads[0])
        fits = threads[0] == 1 or (threads[0] or cores) <= max(1, cores - api_cores)
        for batch, call_ms in curve.items():
            service = call_ms + queue.per_batch_ms + queue.per_item_ms * batch
            found.append(Candidate(threads, batch, call_ms, service, workers, fits))
    return sorted(found, key=lambda candidate: (candidate.batch, candidate.threads))


def for_throughput(curves: Mapping[ThreadSetting, Mapping[int, float]], queue: QueueOverhead, *, cores: int,
                   api_cores: int, tolerance: float = TOLERANCE) -> Proposal:
    options = [option for option in candidates(curves, queue, cores=cores, api_cores=api_cores) if option.fits_host]
    if not options:
        raise ValueError("no measured points to propose from")
    best = max(options, key=lambda candidate: candidate.host_rate)
    # The smallest batch (then the fewest threads) that does as well, within the tolerance.
    chosen = next(candidate for candidate in options if candidate.host_rate >= (1 - tolerance) * best.host_rate)
    smallest = min(options, key=lambda candidate: (candidate.threads != chosen.threads, candidate.batch))
    fixed_ms = smallest.call_ms + queue.per_batch_ms
    wait = _wait(min(fixed_ms, chosen.call_ms / 2))
    reasons = (
        f"service(b) = call(b) + {queue.per_batch_ms:.3f} ms a batch + {queue.per_item_ms:.4f} ms an item",
        f"best host rate: {best.host_rate:,.0f} items/s ({best.workers} x {best.worker_rate:,.0f}, "
        f"batch {best.batch}, {_threads(best.threads)})",
        f"smallest batch within {tolerance:.0%} of it: {chosen.batch} ({_threads(chosen.threads)}), "
        f"{chosen.workers} worker(s) x {chosen.batch} / {chosen.service_ms:.3f} ms = {chosen.host_rate:,.0f} items/s",
        f"max_batch_wait_ms = min(a batch's fixed cost: call({smallest.batch}) + queue a batch = "
        f"{fixed_ms:.3f} ms, half the chosen call {chosen.call_ms / 2:.3f} ms) = {wait:g}: waiting longer "
        "costs more than a batch of its own, and a busy queue fills a batch without waiting",
        f"workers = ({cores} cores - {api_cores} for the API) // {chosen.threads[0] or cores} thread(s) "
        f"= {chosen.workers}",
    )
    return _proposal(chosen, wait, None, True, reasons)


def for_p99(curves: Mapping[ThreadSetting, Mapping[int, float]], queue: QueueOverhead, *, p99_ms: float,
            rate: float, cores: int, api_cores: int, max_utilisation: float = MAX_UTILISATION) -> Proposal:
    """The largest batch whose modelled p99 at ``rate`` items/s fits ``p99_ms``."""
    if rate <= 0 or p99_ms <= 0:
        raise ValueError("the rate and the p99 target must be positive")
    options = [option for option in candidates(curves, queue, cores=cores, api_cores=api_cores) if option.fits_host]
    if not options:
        raise ValueError("no measured points to propose from")
    modelled = []
    for candidate in options:
        per_worker = rate / candidate.workers
        wait = _wait((candidate.batch - 1) / per_worker * 1000)
        utilisation = per_worker / candidate.worker_rate
        modelled.append((candidate, wait, wait + 2 * candidate.service_ms, utilisation))
    fitting = [entry for entry in modelled if entry[2] <= p99_ms and entry[3] <= max_utilisation]
    header = (f"service(b) = call(b) + {queue.per_batch_ms:.3f} ms a batch + {queue.per_item_ms:.4f} ms an item; "
              f"at {rate:,.0f} items/s over w workers, wait(b) = (b - 1) / (rate / w), "
              f"p99 ~ wait(b) + 2 x service(b), busy share (rate / w) / (b / service(b)) <= {max_utilisation:.0%}")
    if fitting:
        candidate, wait, p99, utilisation = max(fitting, key=lambda entry: (entry[0].batch, -entry[2]))
        reasons = (header,
                   f"largest batch that fits {p99_ms:g} ms: {candidate.batch} ({_threads(candidate.threads)}, "
                   f"{candidate.workers} worker(s)): {wait:g} + 2 x {candidate.service_ms:.3f} = {p99:.2f} ms, "
                   f"busy {utilisation:.0%}")
        return _proposal(candidate, wait, p99, True, reasons)
    stable = [entry for entry in modelled if entry[3] < 1] or modelled
    candidate, wait, p99, utilisation = min(stable, key=lambda entry: entry[2])
    reasons = (header,
               f"no measured batch fits {p99_ms:g} ms at {rate:,.0f} items/s; the lowest p99 is batch "
               f"{candidate.batch} ({_threads(candidate.threads)}, {candidate.workers} worker(s)): {wait:g} + 2 x "
               f"{candidate.service_ms:.3f} = {p99:.2f} ms, busy {utilisation:.0%}: more hosts or a lower rate")
    return _proposal(candidate, wait, p99, False, reasons)


def _proposal(candidate: Candidate, wait: float, p99: float | None, fits: bool, reasons: tuple[str, ...]) -> Proposal:
    intra, inter = candidate.threads
    return Proposal(candidate.batch, wait, intra, inter, candidate.workers, candidate.host_rate, p99, fits, reasons)


def _wait(ms: float) -> float:
    return max(MIN_WAIT_MS, round(ms, 1))


def _threads(threads: ThreadSetting) -> str:
    return f"{threads[0] or 'all'} intra-op / {threads[1]} inter-op thread(s)"
