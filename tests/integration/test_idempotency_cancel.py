"""``Idempotency-Key`` and ``DELETE /jobs/<id>`` black-box: a real Redis, a real worker, the API's own app."""

from __future__ import annotations

import io
import threading

import numpy as np
import redis

from inferq import keys
from tests.support.models import build_model
from tests.support.specs import mnist_spec, publish
from tests.support.waiting import wait_for

KEY = {"Idempotency-Key": '"a8e5f1c0-6b7d-4c2a-9e3f-1d2c3b4a5f60"'}


def bulk(images: np.ndarray, name: str = "batch.npy") -> dict:
    buffer = io.BytesIO()
    np.save(buffer, images.astype(np.uint8))
    return {"images": [(io.BytesIO(buffer.getvalue()), name)]}


def counter(store: redis.Redis, priority: str = "bulk") -> int:
    return int(store.get(keys.queued_images("mnist", priority)) or 0)


def jobs_made(store: redis.Redis) -> int:
    return len(store.keys(keys.job("*")))


def status(client, job_id: str) -> str:
    return client.get(f"/jobs/{job_id}").get_json()["status"]


def test_the_same_key_twice_is_one_job_counted_once_and_answered(start_worker, make_client, redis_url, tmp_path,
                                                                 mnist_test):
    build_model(tmp_path / "models", 1, label=7)
    publish(redis_url, mnist_spec(1))
    store = redis.Redis.from_url(redis_url)
    client = make_client()
    images = mnist_test[0][:5]
    first = client.post("/jobs", data=bulk(images), headers=KEY)
    again = client.post("/jobs", data=bulk(images), headers=KEY)
    assert first.status_code == again.status_code == 202
    assert again.get_json()["job_id"] == first.get_json()["job_id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert counter(store) == 5 and jobs_made(store) == 1
    other = client.post("/jobs", data=bulk(mnist_test[0][5:10]), headers=KEY)
    assert other.status_code == 422 and other.get_json()["reason"] == "idempotency_key_reused"
    assert counter(store) == 5 and jobs_made(store) == 1

    start_worker(tmp_path / "models")
    job_id = first.get_json()["job_id"]
    wait_for(lambda: status(client, job_id) == "done", 60, "the job to be done")
    assert counter(store) == 0
    # After the job ended, the key still answers it, as it stands, until its record expires.
    replay = client.post("/jobs", data=bulk(images), headers=KEY).get_json()
    assert (replay["job_id"], replay["status"]) == (job_id, "done")
    assert 0 < store.ttl(store.hget(keys.job(job_id), "idempotency_key")) <= store.ttl(keys.job(job_id))
    assert jobs_made(store) == 1


def test_concurrent_requests_with_one_key_make_one_job(make_client, redis_url, mnist_test):
    publish(redis_url, mnist_spec(1))
    store = redis.Redis.from_url(redis_url)
    images = mnist_test[0][:3]
    clients = [make_client() for _ in range(8)]
    go = threading.Barrier(len(clients))
    answers = []

    def post(client) -> None:
        go.wait()
        answers.append(client.post("/jobs", data=bulk(images), headers=KEY))

    threads = [threading.Thread(target=post, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted({answer.status_code for answer in answers}) in ([202], [202, 409])
    assert len({answer.get_json()["job_id"] for answer in answers if answer.status_code == 202}) == 1
    assert jobs_made(store) == 1 and counter(store) == 3


def test_a_key_refused_for_a_full_queue_succeeds_on_its_retry(make_client, redis_url, mnist_test):
    publish(redis_url, mnist_spec(1))
    store = redis.Redis.from_url(redis_url)
    client = make_client(max_queue_depth=4, max_images_per_request=4)
    assert client.post("/jobs", data=bulk(mnist_test[0][:3])).status_code == 202
    full = client.post("/jobs", data=bulk(mnist_test[0][3:5]), headers=KEY)
    assert full.status_code == 503 and full.get_json()["reason"] == "queue_full"
    blocker = next(iter(store.hkeys(keys.unfinished("mnist", "bulk")))).decode()
    assert client.delete(f"/jobs/{blocker}").status_code == 200  # room again
    retried = client.post("/jobs", data=bulk(mnist_test[0][3:5]), headers=KEY)
    assert retried.status_code == 202 and counter(store) == 2


def test_two_callers_with_the_same_key_make_two_jobs(make_client, redis_url, mnist_test):
    publish(redis_url, mnist_spec(1))
    client = make_client()
    made = {client.post("/jobs", data=bulk(mnist_test[0][:2]), headers={**KEY, "Authorization": auth}
                        ).get_json()["job_id"] for auth in ("Bearer team-a", "Bearer team-b")}
    assert len(made) == 2
    assert jobs_made(redis.Redis.from_url(redis_url)) == 2


def test_a_cancelled_queued_job_leaves_the_count_at_once_and_is_never_run(start_worker, make_client, redis_url,
                                                                          tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=2)
    publish(redis_url, mnist_spec(1))
    store = redis.Redis.from_url(redis_url)
    client = make_client()
    job_id = client.post("/jobs", data=bulk(mnist_test[0][:6])).get_json()["job_id"]
    assert counter(store) == 6
    cancelled = client.delete(f"/jobs/{job_id}")  # no worker yet: it is queued
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert counter(store) == 0 and not store.hexists(keys.unfinished("mnist", "bulk"), job_id)

    worker = start_worker(tmp_path / "models")
    # A job queued after it in its lane: once it is done, the worker has taken the cancelled one's message.
    after = client.post("/jobs", data=bulk(mnist_test[0][6:7])).get_json()["job_id"]
    wait_for(lambda: status(client, after) == "done", 60, "the job queued after it")
    record = client.get(f"/jobs/{job_id}").get_json()
    assert (record["status"], record["result"], record["started_at"]) == ("cancelled", None, None)
    assert "skipping 1 cancelled jobs" in worker.log()
    assert counter(store) == 0
    assert client.delete(f"/jobs/{after}").status_code == 409  # done: its outcome stands
    assert status(client, after) == "done"


def test_a_cancelled_running_job_keeps_its_cancellation_and_is_counted_down_once(start_worker, make_client,
                                                                                redis_url, tmp_path, mnist_test):
    # Many model calls of 4 images each, slow ones: the job runs long enough to be caught running.
    build_model(tmp_path / "models", 1, label=5, slow_seconds=0.25)
    publish(redis_url, mnist_spec(1))
    store = redis.Redis.from_url(redis_url)
    client = make_client(max_batch_size=4)
    start_worker(tmp_path / "models", max_batch_size=4)
    running = client.post("/jobs", data=bulk(mnist_test[0][:48])).get_json()["job_id"]
    wait_for(lambda: status(client, running) == "running", 60, "the job to start")
    cancelled = client.delete(f"/jobs/{running}")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert counter(store) == 0
    # Queued behind it, in its lane: when it starts, the cancelled job's batch has ended and been written.
    later = client.post("/jobs", data=bulk(mnist_test[0][48:88])).get_json()["job_id"]
    assert counter(store) == 40
    wait_for(lambda: status(client, later) in ("running", "done"), 60, "the next batch to start")
    assert status(client, running) == "cancelled"
    # The cancelled job's finish counted nothing down: only the later job's images are counted.
    if status(client, later) == "running":
        assert counter(store) == 40
    wait_for(lambda: status(client, later) == "done", 60, "the later job")
    record = client.get(f"/jobs/{running}").get_json()
    assert (record["status"], record["result"]) == ("cancelled", None)
    assert counter(store) == 0 and store.hlen(keys.unfinished("mnist", "bulk")) == 0


def test_a_handed_back_request_sent_again_with_its_key_gets_its_job_then_its_answer(start_worker, make_client,
                                                                                   redis_url, tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=4)
    publish(redis_url, mnist_spec(1))
    store = redis.Redis.from_url(redis_url)
    client = make_client()
    asked = {**KEY, "Prefer": "respond-async"}
    first = client.post("/recognize", data=bulk(mnist_test[0][:2]), headers=asked)  # no worker: handed back
    again = client.post("/recognize", data=bulk(mnist_test[0][:2]), headers=asked)
    assert first.status_code == again.status_code == 202
    assert again.get_json()["job_id"] == first.get_json()["job_id"] and jobs_made(store) == 1
    start_worker(tmp_path / "models")
    job_id = first.get_json()["job_id"]
    wait_for(lambda: status(client, job_id) == "done", 60, "the job to be done")
    answered = client.post("/recognize", data=bulk(mnist_test[0][:2]), headers=asked)
    assert answered.status_code == 200
    assert answered.get_json()["job_id"] == job_id
    assert [result["labels"] for result in answered.get_json()["results"]] == [[4], [4]]
    assert jobs_made(store) == 1
