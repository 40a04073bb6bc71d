"""Priorities and deadlines with a real worker: interactive work first, expired work never run."""

from __future__ import annotations

import io

import numpy as np
import redis

from inferq import keys
from tests.conftest import png_bytes
from tests.support.models import build_model
from tests.support.specs import mnist_spec, publish
from tests.support.waiting import wait_for


def form(image: np.ndarray, **fields: str) -> dict:
    return {"image": [(io.BytesIO(png_bytes(image)), "digit.png")], **fields}


def started_at(client: redis.Redis, job_id: str) -> float | None:
    raw = client.hget(keys.job(job_id), "started_at")
    return None if raw is None else float(raw)


def test_interactive_work_queued_behind_a_bulk_backlog_runs_first(start_worker, make_client, redis_url, tmp_path,
                                                                  mnist_test):
    build_model(tmp_path / "models", 1, label=3)
    publish(redis_url, mnist_spec(1))  # as the worker would have, had it run before: the API takes the work
    client = make_client(max_batch_size=4)
    bulk = [client.post("/jobs", data=form(image)).get_json()["job_id"] for image in mnist_test[0][:24]]
    interactive = [client.post("/jobs", data=form(image, priority="interactive")).get_json()["job_id"]
                   for image in mnist_test[0][24:26]]
    start_worker(tmp_path / "models", max_batch_size=4)
    store = redis.Redis.from_url(redis_url)
    everything = [*bulk, *interactive]
    wait_for(lambda: all(store.hget(keys.job(job), "status") == b"done" for job in everything), 60,
             "every job to finish")
    # Queued last, taken first: both interactive jobs ran in the worker's first batch.
    first_batch = min(started_at(store, job) for job in everything)
    assert [started_at(store, job) for job in interactive] == [first_batch, first_batch]
    assert sum(started_at(store, job) == first_batch for job in bulk) <= 2  # the batch's other two images
    assert client.get(f"/jobs/{bulk[0]}").get_json()["result"]["results"][0]["labels"] == [3]


def test_work_whose_deadline_passed_in_the_queue_is_not_run(start_worker, make_client, redis_url, tmp_path,
                                                           mnist_test):
    build_model(tmp_path / "models", 1, label=6)
    publish(redis_url, mnist_spec(1))  # as the worker would have, had it run before: the API takes the work
    client = make_client()
    # No worker yet: the sync request gives up after its timeout, and its job after its deadline.
    gave_up = client.post("/recognize?timeout_ms=100", data=form(mnist_test[0][0]))
    assert gave_up.status_code == 504
    late = gave_up.get_json()["job_id"]
    short = client.post("/jobs", data=form(mnist_test[0][1], timeout_ms="100")).get_json()["job_id"]
    patient = client.post("/jobs", data=form(mnist_test[0][2])).get_json()["job_id"]
    start_worker(tmp_path / "models")
    wait_for(lambda: client.get(f"/jobs/{patient}").get_json()["status"] == "done", 60, "the patient job")
    for job_id in (late, short):
        job = client.get(f"/jobs/{job_id}").get_json()
        assert job["status"] == "expired" and job["started_at"] is None and "deadline passed" in job["error"]
    assert client.get(f"/jobs/{patient}").get_json()["result"]["results"][0]["labels"] == [6]
    counted = ['inferq_worker_expired_jobs_total{model="mnist",priority="interactive"} 1.0',
               'inferq_worker_expired_jobs_total{model="mnist",priority="bulk"} 1.0',
               'inferq_worker_queue_wait_seconds_count{model="mnist",priority="bulk"} 2.0']
    # Workers' counters reach /metrics with their next heartbeat.
    wait_for(lambda: all(line in client.get("/metrics").get_data(as_text=True) for line in counted), 10,
             "the expired jobs to be counted")
