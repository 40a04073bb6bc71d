"""A real worker process on a real Redis, driven through the API app."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import time
import uuid

import numpy as np
import pytest
import redis

from inferq import broker, keys, messages, priorities
from inferq.celery_app import make_celery
from inferq.jobs import JobStore
from inferq.settings import Settings
from inferq.task_messages import TaskMessages
from tests.conftest import png_bytes
from tests.support.go_server_model import go_server_predict
from tests.support.models import build_model
from tests.support.specs import mnist_spec, publish
from tests.support.waiting import wait_for


def files(*images: np.ndarray) -> dict:
    return {"image": [(io.BytesIO(png_bytes(image)), f"{i}.png") for i, image in enumerate(images)]}


def job_status(client, job_id: str) -> str:
    return client.get(f"/jobs/{job_id}").get_json()["status"]


def test_a_model_built_as_the_seed_built_it_is_served(start_worker, make_client, go_server_model_dir, mnist_test):
    start_worker(go_server_model_dir)
    client = make_client()
    images = mnist_test[0][:20]
    body = client.post("/recognize", data=files(*images)).get_json()
    assert [r["labels"][0] for r in body["results"]] == go_server_predict(go_server_model_dir / "1", images).tolist()
    assert all(r["probabilities"] is None and r["model_version"] == 1 for r in body["results"])
    spec = client.get("/models/mnist").get_json()
    assert (spec["versions"], spec["ready_versions"]) == ([1], [1])
    assert spec["signature"] is None
    assert spec["inputs"] == [
        {"name": "inputdata", "dtype": "float32", "shape": [-1, 784], "tensor_name": "inputdata:0"}]
    assert [(output["name"], output["tensor_name"]) for output in spec["outputs"]] == [("labels", "inference:0")]


def test_batches_form_from_a_queue_that_filled_up(start_worker, make_client, tmp_path, mnist_test, redis_url):
    """200 one-image messages wait; the worker takes them 32 images to a model call, with the
    default batch window: work already queued is gathered past it."""
    build_model(tmp_path / "models", 1, label=4)
    publish(redis_url, mnist_spec(1))  # as the worker would have, had it run before: the API takes the work
    client = make_client(max_batch_size=32)
    jobs = [client.post("/jobs", data=files(image)).get_json()["job_id"] for image in mnist_test[0][:200]]
    worker = start_worker(tmp_path / "models", max_batch_size=32)
    wait_for(lambda: all(job_status(client, job_id) == "done" for job_id in jobs), 60, "200 queued jobs to finish")

    beat = wait_for(lambda: [b for b in worker.heartbeats() if b["images"] == 200], 10, "the final heartbeat")[0]
    assert beat["images"] / beat["batches"] >= 0.8 * 32, beat
    sizes = {sample[1]["le"]: sample[2] for family in beat["metrics"] if family["name"] == "inferq_worker_batch_images"
             for sample in family["samples"] if sample[0].endswith("_bucket")}
    assert sizes["16.0"] <= 1  # at most the last, partial batch is small
    assert client.get(f"/jobs/{jobs[-1]}").get_json()["result"]["results"][0]["labels"] == [4]


def test_a_lone_image_is_answered_without_waiting_out_the_batch_window(start_worker, make_client, tmp_path,
                                                                         mnist_test):
    build_model(tmp_path / "models", 1, label=6)
    start_worker(tmp_path / "models", max_batch_wait_ms=120_000)
    client = make_client(sync_timeout_s=30)
    response = client.post("/recognize", data=files(mnist_test[0][0]))
    assert response.status_code == 200  # held for the two-minute window it would be a 504
    assert response.get_json()["labels"] == [6]


def test_the_api_and_the_worker_carry_on_after_redis_forgot_their_scripts(start_worker, make_client, tmp_path,
                                                                          mnist_test, redis_url):
    """A Redis restarted without its script cache: each script is loaded again where it is next run."""
    build_model(tmp_path / "models", 1, label=3)
    start_worker(tmp_path / "models")
    client = make_client()
    assert client.post("/recognize", data=files(mnist_test[0][0])).get_json()["labels"] == [3]
    redis.Redis.from_url(redis_url).script_flush()
    for image in mnist_test[0][1:4]:
        assert client.post("/recognize", data=files(image)).get_json()["labels"] == [3]


def test_a_new_version_is_served_without_a_restart_and_a_broken_one_refused(start_worker, make_client, tmp_path,
                                                                           mnist_test):
    models = tmp_path / "models"
    build_model(models, 1, label=1)
    worker = start_worker(models)
    client = make_client()
    assert client.post("/recognize", data=files(mnist_test[0][0])).get_json()["labels"] == [1]

    build_model(models, 2, label=2)
    worker.wait_serving(version=2, timeout_s=30)
    body = client.post("/recognize", data=files(mnist_test[0][0])).get_json()
    assert (body["labels"], body["model_version"]) == ([2], 2)

    broken = models / "3"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    wait_for(lambda: "model mnist: refused version 3, still serving [2]" in worker.log(), 30,
             "the broken version to be refused")
    body = client.post("/recognize", data=files(mnist_test[0][0])).get_json()
    assert (body["labels"], body["model_version"]) == ([2], 2)
    described = client.get("/models/mnist").get_json()
    assert (described["versions"], described["ready_versions"]) == ([2], [2])
    failures = client.get("/status").get_json()["load_failures"]
    assert [(failure["model"], failure["version"]) for failure in failures] == [("mnist", 3)]

    # The broken version was a copy still under way: once it is done, the worker serves it.
    shutil.rmtree(broken)
    shutil.copytree(build_model(tmp_path / "elsewhere", 3, label=3), broken)
    worker.wait_serving(version=3, timeout_s=60)
    body = client.post("/recognize", data=files(mnist_test[0][0])).get_json()
    assert (body["labels"], body["model_version"]) == ([3], 3)
    assert client.get("/status").get_json()["load_failures"] == []


def test_a_failing_model_call_fails_the_jobs_of_its_batch_saying_so_and_logs_the_reason(
        start_worker, make_client, tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=0, fail_when_brighter_than=200)
    worker = start_worker(tmp_path / "models")
    client = make_client()
    response = client.post("/recognize", data=files(mnist_test[0][0]))
    assert response.status_code == 500
    said = re.fullmatch(r"recognition failed: model 'mnist' version 1 failed on this batch \(error id ([0-9a-f]{8})\); "
                        r"see the worker's log", response.get_json()["error"])
    assert said, response.get_json()
    job = client.get(f"/jobs/{response.get_json()['job_id']}").get_json()
    assert job["status"] == "failed" and said[1] in job["error"]
    assert "pixel too bright" not in job["error"] and str(tmp_path) not in job["error"]
    # TensorFlow's text, graph nodes and all, is the worker's log's, under the id the client was given.
    logged = wait_for(lambda: [line for line in worker.log().splitlines() if said[1] in line], 10, "the error logged")
    assert "pixel too bright" in worker.log().split(said[1], 1)[1]
    assert len(logged) == 1
    dim = (mnist_test[0][0] // 2).astype(np.uint8)
    assert client.post("/recognize", data=files(dim)).status_code == 200  # the worker goes on


def test_a_job_whose_worker_was_killed_mid_batch_is_delivered_again(start_worker, make_client, tmp_path,
                                                                    mnist_test, redis_url):
    build_model(tmp_path / "models", 1, label=8, slow_seconds=3)
    first = start_worker(tmp_path / "models", visibility_timeout_s=3)
    client = make_client()
    response = client.post("/jobs", data=files(mnist_test[0][0]))
    assert response.status_code == 202
    job_id = response.get_json()["job_id"]
    wait_for(lambda: job_status(client, job_id) == "running", 30, "the batch to start")
    first.kill()
    assert job_status(client, job_id) == "running"

    start_worker(tmp_path / "models", visibility_timeout_s=3)
    wait_for(lambda: job_status(client, job_id) == "done", 60, "the job to be delivered again and done")
    assert client.get(f"/jobs/{job_id}").get_json()["result"]["results"][0]["labels"] == [8]
    assert first.client.hlen("unacked") == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc to find pool processes")
def test_a_killed_pool_process_gives_its_batch_back_at_once(start_worker, make_client, tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=5, slow_seconds=3)
    # A visibility timeout far longer than the test: only rejecting the lost batch can bring it back.
    worker = start_worker(tmp_path / "models", pool="prefork", concurrency=1, visibility_timeout_s=3600)
    client = make_client()
    job_id = client.post("/jobs", data=files(mnist_test[0][0])).get_json()["job_id"]
    wait_for(lambda: job_status(client, job_id) == "running", 30, "the batch to start")
    pool_process = worker.heartbeats()[0]["pid"]
    assert pool_process != worker.process.pid
    os.kill(pool_process, 9)

    wait_for(lambda: job_status(client, job_id) == "done", 90, "the batch to run again in a new pool process")
    assert client.get(f"/jobs/{job_id}").get_json()["result"]["results"][0]["labels"] == [5]
    assert [worker.client.llen(queue) for queue in priorities.queues("q.mnist")] == [0, 0]
    assert [worker.client.get(keys.queued_images("mnist", priority))
            for priority in priorities.PRIORITIES] == [None, b"0"]


def first_release_message(redis_url: str, queue: str, job_id: str, pixels: np.ndarray, priority: str) -> None:
    """Admit a job and push its message as an API of the first releases did, before models had names.

    The job's record without a model, counted in that release's per-priority counter; its message
    ``{"v": 1, "jobs": [{"id", "pixels", ...}]}``, a Celery task message without the model header,
    pushed with its bell onto the queue of that release's names (QUEUE_NAME, QUEUE_NAME.bulk).
    """
    client = redis.Redis.from_url(redis_url)
    client.hset(keys.job(job_id), mapping={"status": "queued", "n": len(pixels), "created_at": time.time(),
                                           "priority": priority,
                                           "filenames": json.dumps([f"old-{i}.png" for i in range(len(pixels))])})
    client.expire(keys.job(job_id), 3600)
    client.incrby(f"{keys.PREFIX}:queued-images:{priority}", len(pixels))
    body = {"v": messages.LEGACY_FORMAT_VERSION,
            "jobs": [{"id": job_id, "pixels": base64.b64encode(pixels.astype(np.uint8).tobytes()).decode("ascii"),
                      "reply_to": None, "priority": priority}]}
    celery = make_celery(Settings(redis_url=redis_url, queue_name="q"))
    message = celery.amqp.as_task_v2(str(uuid.uuid4()), messages.TASK_NAME, args=[body],
                                     argsrepr=f"<1 jobs, {len(pixels)} images>", ignore_result=True)
    envelope = broker.envelope(queue, message.body, properties=message.properties,
                               headers={**message.headers, messages.IMAGES_HEADER: len(pixels)})
    JobStore(client, result_ttl_s=3600, depth_limits=Settings().depth_limits).enqueue(envelope)


def test_work_queued_by_the_first_releases_is_answered_after_an_upgrade(start_worker, make_client, tmp_path,
                                                                         mnist_test, redis_url):
    """A bulk job queued before the upgrade, in the old format on the old queue, is answered by the
    new worker when it starts; an interactive one pushed by an old API still running while it serves
    is taken up too, within a heartbeat."""
    build_model(tmp_path / "models", 1, label=7)
    images = mnist_test[0].reshape(-1, 784)
    bulk, interactive = str(uuid.uuid4()), str(uuid.uuid4())
    first_release_message(redis_url, "q.bulk", bulk, images[:2], priorities.BULK)
    worker = start_worker(tmp_path / "models")
    client = make_client()
    wait_for(lambda: job_status(client, bulk) == "done", 30, "the queued job of the first releases")
    job = client.get(f"/jobs/{bulk}").get_json()
    assert (job["model"], job["priority"], job["images"]) == (None, "bulk", 2)
    answers = job["result"]["results"]
    assert [(answer["filename"], answer["labels"], answer["model_version"]) for answer in answers] == [
        ("old-0.png", [7], 1), ("old-1.png", [7], 1)]
    assert all(len(answer["probabilities"]) == 10 for answer in answers)

    first_release_message(redis_url, "q", interactive, images[2:3], priorities.INTERACTIVE)
    wait_for(lambda: job_status(client, interactive) == "done", 30, "the job an old API pushed meanwhile")
    assert client.get(f"/jobs/{interactive}").get_json()["result"]["results"][0]["labels"] == [7]

    store = worker.client
    assert [store.llen(queue) for queue in ("q", "q.bulk")] == [0, 0] and store.hlen("unacked") == 0
    # Finished under the mnist model's counters, which never go below zero for work they never counted.
    assert [int(store.get(keys.queued_images("mnist", priority)) or 0)  # absent: nothing ever counted
            for priority in priorities.PRIORITIES] == [0, 0]


def test_a_job_of_no_images_in_a_message_fails_alone_and_its_message_is_answered(start_worker, make_client, tmp_path,
                                                                                 mnist_test, redis_url):
    """Three jobs in one message, as the API sends requests that arrive together, the middle one of
    no images: admitted (counted as none) by an API that let it through, as one did."""
    build_model(tmp_path / "models", 1, label=3)
    start_worker(tmp_path / "models")
    client = make_client()
    pixels = mnist_test[0].reshape(-1, 784)
    jobs = [messages.JobInput(str(uuid.uuid4()), {"inputdata": images}, None, priorities.BULK)
            for images in (pixels[:2], pixels[:0], pixels[2:3])]
    settings = Settings(redis_url=redis_url, queue_name="q")
    envelope = TaskMessages(make_celery(settings), settings).envelope("mnist", jobs, priorities.BULK)
    store = JobStore(redis.Redis.from_url(redis_url), result_ttl_s=60, depth_limits=settings.depth_limits)
    assert store.admit([(one.job_id, [f"{n}.png" for n in range(one.count)]) for one in jobs], model="mnist",
                       priority=priorities.BULK, enqueue=envelope) == [None, None, None]

    first, empty, last = (job.job_id for job in jobs)
    wait_for(lambda: all(job_status(client, one.job_id) in ("done", "failed") for one in jobs), 30,
             "the message's jobs to finish")
    assert [job_status(client, job_id) for job_id in (first, empty, last)] == ["done", "failed", "done"]
    assert client.get(f"/jobs/{empty}").get_json()["error"] == "the worker could not read this job: it has no items"
    assert [answer["labels"] for answer in client.get(f"/jobs/{first}").get_json()["result"]["results"]] == [[3], [3]]
    assert store.queued_images(["mnist"]) == {"mnist": {"interactive": 0, "bulk": 0}}
