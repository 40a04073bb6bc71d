"""Where am I in the queue: the estimate a queued job shows, against when it really started, with a
real worker draining a known backlog; and a full queue's Retry-After from the same drain rate."""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
import orjson
import redis

from inferq import drain, keys
from tests.support.models import build_model
from tests.support.specs import mnist_spec, publish
from tests.support.waiting import wait_for

#: Images per job, per model call, and the model's time per call: a worker drains at most
#: BATCH / SLOW_S images a second, steadily, whatever else runs.
JOB, BATCH, SLOW_S = 32, 16, 0.1
#: Jobs of the warm-up, and seconds of work the backlog holds at the rate measured on it (a model
#: calibrated on a busy machine runs faster on a quiet one: the backlog is sized by what it does).
WARM_UP_JOBS, BACKLOG_S = 60, 5.0
#: How far an estimate may be from the start it predicted: half the wait it predicted, or half a
#: second (a batch or two: a job starts when the batch before it ends, and a rate is measured over
#: a few samples of half a second), whichever is more. On a machine shared with other tests the
#: worst estimates were off by a third of their wait (docs/benchmarks.md): the rate changes under
#: them with the machine's load. An estimate off by 2x, or counting the wrong lane, fails.
TOLERANCE_SHARE, TOLERANCE_FLOOR_S = 1 / 2, 0.5


def npy_job(images: int) -> dict:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((images, 28, 28), np.uint8))
    buffer.seek(0)
    return {"images": [(buffer, "batch.npy")]}


def queue_jobs(client, count: int, images: int = JOB) -> list[str]:
    jobs = []
    for _ in range(count):
        response = client.post("/jobs", data=npy_job(images))
        assert response.status_code == 202, response.get_json()
        jobs.append(response.get_json()["job_id"])
    return jobs


def all_done(store: redis.Redis, jobs: list[str]) -> bool:
    # Read from Redis in one round trip, not through the API: the test's own CPU must not slow the
    # worker whose rate it checks (two cores are shared by everything here).
    with store.pipeline(transaction=False) as pipe:
        for job in jobs:
            pipe.hget(keys.job(job), "status")
        return all(status == b"done" for status in pipe.execute())


def test_the_estimated_start_of_queued_jobs_matches_when_they_started(start_worker, make_client, redis_url,
                                                                      tmp_path):
    build_model(tmp_path / "models", 1, label=4, slow_seconds=SLOW_S)
    publish(redis_url, mnist_spec(1))  # as an earlier worker would have: the API takes the work
    client = make_client(max_batch_size=BATCH)
    store = redis.Redis.from_url(redis_url)

    # A first backlog for the worker to measure its rate on, queued before it starts: posting
    # while it drains would slow it by this test's own CPU, and the rate with it. Nothing drained
    # yet: the place is known, the time is not.
    warm_up = queue_jobs(client, WARM_UP_JOBS)
    assert client.get(f"/jobs/{warm_up[-1]}").get_json()["queue"] == \
        {"items_ahead": (WARM_UP_JOBS - 1) * JOB, "drain_rate": None, "estimated_start": None}
    worker = start_worker(tmp_path / "models", max_batch_size=BATCH)
    wait_for(lambda: drain.read_rate(store, "mnist"), 60, "the worker to measure a drain rate")
    wait_for(lambda: all_done(store, warm_up), 60, "the warm-up to drain", interval_s=0.25)
    # The meter has seen the lanes empty: the backlog's rate is measured on its own stretch.
    wait_for(lambda: orjson.loads(store.lindex(keys.drain_samples("mnist"), 0))[2] == 0, 10,
             "a sample of the empty lanes", interval_s=0.1)

    backlog = queue_jobs(client, min(max(round(BACKLOG_S * drain.read_rate(store, "mnist") / JOB), 20), 200))
    estimates: dict[str, tuple[float, float, int]] = {}  # job -> (seen at, estimated start, items ahead)

    def estimate_each_job_once() -> bool:
        # Each job's first estimate, the one made furthest ahead; done once none is left to see queued.
        left = False
        for job in (job for job in backlog if job not in estimates):
            now, view = time.time(), client.get(f"/jobs/{job}").get_json()
            if view["status"] == "queued" and view["queue"]["estimated_start"] is not None:
                estimates[job] = (now, view["queue"]["estimated_start"], view["queue"]["items_ahead"])
            left = left or view["status"] == "queued"
        return not left

    wait_for(estimate_each_job_once, 120, "every job of the backlog to start", interval_s=0.25)
    wait_for(lambda: all_done(store, backlog), 60, "the backlog to drain", interval_s=0.25)

    # Most of the backlog was seen queued with an estimate; each one's place was its order.
    assert len(estimates) >= len(backlog) // 2, f"only {len(estimates)} jobs were seen queued"
    seen = [job for job in backlog if job in estimates]
    errors, waits = [], []
    for job in seen:
        seen_at, estimated, ahead = estimates[job]
        started = client.get(f"/jobs/{job}").get_json()["started_at"]
        errors.append(started - estimated)
        waits.append(started - seen_at)
        assert ahead <= backlog.index(job) * JOB + JOB  # what was queued before it, at most
    rate = drain.read_rate(store, "mnist")
    print(f"\nestimate error over {len(seen)} jobs (started - estimated, s): mean {statistics.mean(errors):+.3f}, "
          f"median abs {statistics.median(map(abs, errors)):.3f}, max abs {max(map(abs, errors)):.3f}; "
          f"waits predicted {min(waits):.2f}..{max(waits):.2f} s; drain rate {rate:.0f} images/s")
    print("errors:", " ".join(f"{error:+.2f}/{wait:.2f}" for error, wait in zip(errors, waits, strict=True)))
    for index, (error, wait) in enumerate(zip(errors, waits, strict=True)):
        assert abs(error) <= max(TOLERANCE_FLOOR_S, TOLERANCE_SHARE * wait), \
            f"job {index} of {len(seen)}: started {error:+.2f} s from its estimate, {wait:.2f} s after it was made"

    # A full queue's Retry-After: the time to drain what keeps this request out, at that rate.
    worker.stop()
    full = make_client(max_batch_size=BATCH, max_queue_depth=2000)
    queue_jobs(full, 2, images=1000)
    refused = full.post("/jobs", data=npy_job(1000))
    assert refused.status_code == 503 and refused.get_json()["reason"] == "queue_full"
    rate = drain.read_rate(store, "mnist")
    expected = drain.retry_after_s(1000, rate, 1)
    assert refused.headers["Retry-After"] == str(expected)
    assert expected > 1, f"{rate} images/s should take more than a second for 1000 images"
