"""Tenants through the whole service, API and a real worker: a flooding tenant's backlog does not
hold up another tenant's bulk work, and every job of both is answered."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import redis

from inferq import keys
from inferq.tenants import key_digest
from tests.conftest import png_bytes
from tests.support.models import build_model
from tests.support.specs import mnist_spec, publish
from tests.support.waiting import wait_for


def form(images: list[np.ndarray]) -> dict:
    return {"image": [(io.BytesIO(png_bytes(image)), f"{n}.png") for n, image in enumerate(images)]}


def test_a_flooding_tenant_shares_the_bulk_lane_with_a_small_one(start_worker, make_client, redis_url, tmp_path,
                                                                 mnist_test):
    build_model(tmp_path / "models", 1, label=3)
    publish(redis_url, mnist_spec(1))  # as the worker would have, had it run before: the API takes the work
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [
        {"name": "flood", "keys": ["sha256:" + key_digest("k-flood").hex()]},
        {"name": "small", "keys": ["sha256:" + key_digest("k-small").hex()]}]}))
    client = make_client(max_batch_size=4, tenants_file=str(path))
    images = list(mnist_test[0][:4])
    flood = [client.post("/jobs", data=form(images), headers={"Authorization": "Bearer k-flood"})
             for _ in range(20)]
    small = [client.post("/jobs", data=form(images), headers={"Authorization": "Bearer k-small"})
             for _ in range(4)]
    assert {response.status_code for response in flood + small} == {202}
    flood_ids = [response.get_json()["job_id"] for response in flood]
    small_ids = [response.get_json()["job_id"] for response in small]
    start_worker(tmp_path / "models", max_batch_size=4)
    store = redis.Redis.from_url(redis_url)
    everything = flood_ids + small_ids
    wait_for(lambda: all(store.hget(keys.job(job), "status") == b"done" for job in everything), 120,
             "every job to finish")
    started = {job: float(store.hget(keys.job(job), "started_at")) for job in everything}
    # Queued after all twenty of the flood's, the small tenant's four ran while the flood's first
    # ones did: turn about, a message (four items) each, not behind the flood's backlog.
    last_small = max(started[job] for job in small_ids)
    assert sum(started[job] <= last_small for job in flood_ids) <= 6
    # In order within each tenant.
    assert sorted(flood_ids, key=started.get) == flood_ids and sorted(small_ids, key=started.get) == small_ids
    job = client.get(f"/jobs/{small_ids[0]}", headers={"Authorization": "Bearer k-small"}).get_json()
    assert job["tenant"] == "small" and job["result"]["results"][0]["labels"] == [3]


def test_a_killed_workers_tenant_message_is_restored_and_run_before_its_tenants_later_ones(
        start_worker, make_client, redis_url, tmp_path, mnist_test):
    """Claimed from its tenant's list, a message whose worker died comes back onto the queue's own
    list (its routing key is the queue's), is run by the next worker, and before the jobs its
    tenant queued after it."""
    from inferq import broker, priorities

    visibility_timeout_s, slow_s = 4, 2
    build_model(tmp_path / "models", 1, label=4, slow_seconds=slow_s)
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [{"name": "a", "keys": ["sha256:" + key_digest("k-a").hex()]}]}))
    worker = start_worker(tmp_path / "models", visibility_timeout_s=visibility_timeout_s)
    client = make_client(tenants_file=str(path))
    key = {"Authorization": "Bearer k-a"}
    first = client.post("/jobs", data=form(list(mnist_test[0][:1])), headers=key).get_json()["job_id"]
    wait_for(lambda: client.get(f"/jobs/{first}", headers=key).get_json()["status"] == "running", 60,
             "the batch to start")
    worker.kill()
    later = client.post("/jobs", data=form(list(mnist_test[0][1:2])), headers=key).get_json()["job_id"]
    queue = priorities.queue("q.mnist", "bulk")
    store = redis.Redis.from_url(redis_url)
    assert store.llen(broker.inflight(queue)) == 1 and store.llen(broker.tenant_queue(queue, "a")) == 1
    # The next worker restores, as it starts polling, what has been unacknowledged for longer than the
    # visibility timeout: start it once the dead worker's message is that old (kombu's unacked index
    # scores each message by when it was taken), else it could take the later job before the sweep.
    [(_, claimed_at)] = store.zrange("unacked_index", 0, -1, withscores=True)
    wait_for(lambda: time.time() > claimed_at + visibility_timeout_s + 0.5, visibility_timeout_s + 30,
             "the dead worker's message to outlive its visibility timeout")
    start_worker(tmp_path / "models", visibility_timeout_s=visibility_timeout_s)
    wait_for(lambda: all(client.get(f"/jobs/{job}", headers=key).get_json()["status"] == "done"
                         for job in (first, later)), visibility_timeout_s + 2 * slow_s + 20, "both jobs to be run")
    # Not after its tenant's later job: in the same batch as it, or before.
    assert float(store.hget(keys.job(first), "finished_at")) <= float(store.hget(keys.job(later), "finished_at"))
    wait_for(lambda: store.hlen("unacked") == 0, 10, "the messages to be acknowledged")
    assert store.llen(broker.inflight(queue)) == 0 and store.llen(broker.tenant_ring(queue)) == 0
