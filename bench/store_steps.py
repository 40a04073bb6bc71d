"""What the store's steps cost: ``python -m bench.store_steps redis://host:port/db``.

Times, on the job store as the API and a worker call it: the worker's look for cancelled jobs before
a batch runs (one script a batch, of 1, 16 and 64 jobs); a batch's start as it was (that look, then
the mark running) against ``JobStore.start`` (one script), in turn; a batch's acks as kombu sends
them (a transaction a message) against one transaction (``inferq.broker.acks_together``), in turn;
a batch's finish followed by its acks in one transaction against the finish that acknowledges its
messages itself (``JobStore.finish(acks=...)``), in turn;
and a one-job admission alone against one with an ``Idempotency-Key`` reserved before and settled
after. Empties the database it is given, before and after.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable

import redis

from inferq import keys
from inferq.broker import HeldMessages
from inferq.jobs import Finished, JobStore, Outcome
from inferq.priorities import BULK, INTERACTIVE

ROUNDS = 2000


def timed(step: Callable[[], object], rounds: int = ROUNDS) -> tuple[float, float]:
    """Median and 99th percentile of ``step``, in microseconds."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        step()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(0.99 * len(samples))] * 1e6


def timed_pair(first: Callable[[], object], second: Callable[[], object],
               rounds: int = ROUNDS) -> tuple[tuple[float, float], tuple[float, float]]:
    """:func:`timed` of two steps, a round of each in turn, so that a machine that slows down slows both."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for step, taken in zip((first, second), samples, strict=True):
            started = time.perf_counter()
            step()
            taken.append(time.perf_counter() - started)
    return tuple((statistics.median(taken) * 1e6, sorted(taken)[int(0.99 * rounds)] * 1e6)  # type: ignore[return-value]
                 for taken in samples)


def _acks(client: redis.Redis, tags: list[str], *, together: bool) -> None:
    """What kombu sends to acknowledge messages (inferq.broker.QoS): a transaction each, or one for all."""
    pipe = client.pipeline()
    for tag in tags:
        pipe.lrem("bench:inflight", -1, tag).zrem("bench:unacked_index", tag).hdel("bench:unacked", tag)
        if not together:
            pipe.execute()
    if together:
        pipe.execute()


def main(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.flushdb()
    store = JobStore(client, result_ttl_s=600, depth_limits={INTERACTIVE: 10**9, BULK: 10**9})
    try:
        for batch in (1, 16, 64):
            ids = [str(uuid.uuid4()) for _ in range(batch)]
            store.admit([(job_id, ["f"]) for job_id in ids], model="m", priority=BULK)
            median, p99 = timed(lambda ids=ids: store.cancelled(ids))
            print(f"cancelled look, {batch:2d} jobs: median {median:4.0f} us, p99 {p99:4.0f} us")
            median, p99 = timed(lambda ids=ids: store.start(ids))
            print(f"a batch's start, {batch:2d} jobs: median {median:4.0f} us, p99 {p99:4.0f} us")
        for messages in (1, 4, 16):
            tags = [str(uuid.uuid4()) for _ in range(messages)]
            before, after = timed_pair(lambda tags=tags: _acks(client, tags, together=False),
                                       lambda tags=tags: _acks(client, tags, together=True))
            print(f"acks of {messages:2d} messages: one each median {before[0]:4.0f} us (p99 {before[1]:4.0f}), "
                  f"together median {after[0]:4.0f} us (p99 {after[1]:4.0f})")

        for messages in (1, 16):
            ids = [str(uuid.uuid4()) for _ in range(messages)]
            store.admit([(job_id, ["f"]) for job_id in ids], model="m", priority=INTERACTIVE)
            finished = [Finished(job_id, 1, "m", INTERACTIVE, None, Outcome.done({"outputs": {"labels": [1]}}))
                        for job_id in ids]
            tags = [str(uuid.uuid4()) for _ in range(messages)]
            held = HeldMessages("bench:unacked", "bench:unacked_index", tuple(tags), ("bench:inflight",) * messages)

            def finish_then_ack(finished=finished, tags=tags) -> None:
                store.finish(finished)
                _acks(client, tags, together=True)

            before, after = timed_pair(finish_then_ack, lambda finished=finished, held=held: store.finish(
                finished, acks=held))
            print(f"finish and acks of {messages:2d} messages: then acks median {before[0]:4.0f} us (p99 "
                  f"{before[1]:4.0f}), acks in the finish median {after[0]:4.0f} us (p99 {after[1]:4.0f})")

        def admit() -> str:
            job_id = str(uuid.uuid4())
            store.admit([(job_id, ["f"])], model="m", priority=BULK)
            return job_id

        def with_key() -> None:
            job_id, key = str(uuid.uuid4()), keys.idempotency(uuid.uuid4().hex)
            store.reserve_key(key, "fingerprint", job_id, pending_s=60)
            store.admit([(job_id, ["f"])], model="m", priority=BULK)
            store.settle_key(key, job_id, "fingerprint")

        for name, step in (("admission alone", admit), ("admission with a key", with_key)):
            median, p99 = timed(step)
            print(f"{name}: median {median:4.0f} us, p99 {p99:4.0f} us")
    finally:
        client.flushdb()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "redis://localhost:6379/15")
