"""Interactive work queued while a big bulk job runs is answered between the job's model calls."""

from __future__ import annotations

import io

import redis

from inferq import broker, keys, priorities
from inferq.priorities import BULK, INTERACTIVE
from tests.conftest import png_bytes
from tests.support.models import build_model
from tests.support.specs import mnist_spec, publish
from tests.support.waiting import wait_for

#: Items of the bulk job, each a model call of its own (MAX_BATCH_SIZE 1), each SLOW_S long.
BULK_ITEMS, SLOW_S = 8, 0.3


def field(job: dict, name: str) -> float | None:
    value = job.get(name)
    return None if value is None else float(value)


def record(client: redis.Redis, job_id: str) -> dict:
    return {name.decode(): value.decode() for name, value in client.hgetall(keys.job(job_id)).items()
            if name.decode() != "outcome"}


def submit_bulk_then_interactive(client, store: redis.Redis, images) -> tuple[str, str]:
    """A bulk job of BULK_ITEMS images, and once its first model call is done, an interactive job."""
    bulk = client.post("/jobs", data={"image": [(io.BytesIO(png_bytes(image)), f"{n}.png")
                                                for n, image in enumerate(images[:BULK_ITEMS])]}).get_json()["job_id"]
    # Under CPU load from elsewhere, a worker's first batch can be slow to start.
    wait_for(lambda: int(store.hget(keys.job(bulk), "items_done") or 0) >= 1, 60, "the bulk job's first call")
    interactive = client.post("/jobs", data={"image": [(io.BytesIO(png_bytes(images[0])), "now.png")],
                                             "priority": INTERACTIVE}).get_json()["job_id"]
    return bulk, interactive


def labels(client, job_id: str) -> list[list[int]]:
    return [result["labels"] for result in client.get(f"/jobs/{job_id}").get_json()["result"]["results"]]


def test_interactive_work_queued_during_a_big_bulk_job_is_answered_before_the_job_ends_which_ends_once(
        start_worker, make_client, redis_url, tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=3, slow_seconds=SLOW_S)
    publish(redis_url, mnist_spec(1))
    client = make_client(max_batch_size=1)
    store = redis.Redis.from_url(redis_url)
    start_worker(tmp_path / "models", max_batch_size=1)
    bulk, interactive = submit_bulk_then_interactive(client, store, mnist_test[0])
    wait_for(lambda: record(store, interactive)["status"] == "done", 60, "the interactive job")
    assert record(store, bulk)["status"] == "running"  # answered between the bulk job's calls
    assert int(record(store, bulk)["items_done"]) < BULK_ITEMS
    wait_for(lambda: record(store, bulk)["status"] == "done", 60, "the bulk job")
    bulk_job, interactive_job = record(store, bulk), record(store, interactive)
    # The bulk job started once, before the interactive one, and finished after it.
    assert (field(bulk_job, "started_at") < field(interactive_job, "started_at")
            < field(interactive_job, "finished_at") < field(bulk_job, "finished_at"))
    assert labels(client, bulk) == [[3]] * BULK_ITEMS and labels(client, interactive) == [[3]]
    # Recorded once: each lane counted its images out once, and every message was acknowledged.
    assert int(store.get(keys.lane_finished("mnist", BULK))) == BULK_ITEMS
    assert int(store.get(keys.lane_finished("mnist", INTERACTIVE))) == 1
    assert int(store.get(keys.queued_images("mnist", BULK))) == 0
    assert int(store.get(keys.queued_images("mnist", INTERACTIVE))) == 0
    wait_for(lambda: store.hlen("unacked") == 0, 10, "every message to be acknowledged")
    for queue in priorities.queues("q.mnist"):
        assert store.llen(broker.inflight(queue)) == 0


def test_a_worker_killed_mid_bulk_job_after_answering_interactive_work_loses_nothing_and_runs_neither_twice(
        start_worker, make_client, redis_url, tmp_path, mnist_test):
    """The interactive message was acknowledged once answered; the bulk job's was not, so the next
    worker runs the job again from its start, and it is recorded once."""
    visibility_timeout_s = 3
    build_model(tmp_path / "models", 1, label=5, slow_seconds=SLOW_S)
    publish(redis_url, mnist_spec(1))
    client = make_client(max_batch_size=1)
    store = redis.Redis.from_url(redis_url)
    worker = start_worker(tmp_path / "models", max_batch_size=1, visibility_timeout_s=visibility_timeout_s)
    bulk, interactive = submit_bulk_then_interactive(client, store, mnist_test[0])
    wait_for(lambda: record(store, interactive)["status"] == "done", 60, "the interactive job")
    answered = record(store, interactive)
    worker.kill()
    assert record(store, bulk)["status"] == "running"
    # Only the bulk job's message is held unacknowledged by the dead worker.
    assert store.hlen("unacked") == 1
    assert store.llen(broker.inflight(priorities.queue("q.mnist", BULK))) == 1
    assert store.llen(broker.inflight(priorities.queue("q.mnist", INTERACTIVE))) == 0
    start_worker(tmp_path / "models", max_batch_size=1, visibility_timeout_s=visibility_timeout_s)
    wait_for(lambda: record(store, bulk)["status"] == "done", visibility_timeout_s + BULK_ITEMS * SLOW_S + 60,
             "the dead worker's bulk job to be run again")
    assert labels(client, bulk) == [[5]] * BULK_ITEMS
    assert record(store, interactive) == answered  # not run again
    assert int(store.get(keys.lane_finished("mnist", BULK))) == BULK_ITEMS
    assert int(store.get(keys.lane_finished("mnist", INTERACTIVE))) == 1
    assert int(store.get(keys.queued_images("mnist", BULK))) == 0
    wait_for(lambda: store.hlen("unacked") == 0, 10, "the bulk job's message to be acknowledged")
