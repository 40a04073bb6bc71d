"""A message nobody can read, pushed onto a worker's queue by anything with access to Redis: set
aside where /status counts it, while the work beside it is run."""

from __future__ import annotations

import io

from inferq import keys, priorities
from inferq.broker import bell
from tests.conftest import png_bytes
from tests.support.models import build_model
from tests.support.waiting import wait_for

GARBAGE = b"\x00 not a task message {"


def test_garbage_on_a_queue_goes_to_the_dead_letters_and_the_good_job_beside_it_is_run(
        start_worker, make_client, tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=6)
    worker = start_worker(tmp_path / "models")
    queue = priorities.queue("q.mnist", priorities.BULK)
    worker.client.lpush(queue, GARBAGE)
    worker.client.lpush(bell(queue), 1)
    client = make_client()
    job_id = client.post("/jobs", data={"image": [(io.BytesIO(png_bytes(mnist_test[0][0])), "a.png")]}
                         ).get_json()["job_id"]
    job = wait_for(lambda: (body := client.get(f"/jobs/{job_id}").get_json())["status"] == "done" and body, 60,
                   "the good job to be run")
    assert job["result"]["results"][0]["labels"] == [6]
    assert worker.client.lrange(keys.DEAD_LETTERS, 0, -1) == [GARBAGE]
    assert worker.client.llen(queue) == 0 and worker.client.hlen("unacked") == 0
    assert client.get("/status").get_json()["dead_letters"] == 1
    assert worker.process.poll() is None, "the worker survives the garbage"
