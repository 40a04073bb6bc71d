"""What GET /jobs/<id> tells of a queued job (its place and estimated start) and of its callback, and
a full queue's Retry-After, as the description says."""

import io

import orjson

from inferq import callbacks, keys
from tests.api.test_openapi import assert_matches
from tests.support.stand_in import publish_heartbeat

SECRET = callbacks.new_secret()


def files(count: int, data: bytes) -> dict:
    return {"image": [(io.BytesIO(data), f"{i}.png") for i in range(count)]}


def test_a_queued_job_shows_what_is_ahead_of_it_and_when_it_should_start(make_app, fake_redis, digit_104):
    app, worker = make_app(callback_allowed_urls="https://hooks.example.com/", callback_secret=SECRET)
    client = app.test_client()
    publish_heartbeat(fake_redis)
    worker.answer = False  # everything stays queued
    first = client.post("/jobs", data=files(3, digit_104)).get_json()["job_id"]
    second = client.post("/jobs", data={**files(2, digit_104), "callback": "https://hooks.example.com/a"})
    assert second.status_code == 202
    job = client.get(second.headers["Location"])
    assert_matches(job, "/jobs/{job_id}")
    assert job.get_json()["queue"] == {"items_ahead": 3, "drain_rate": None, "estimated_start": None}
    assert job.get_json()["callback"] == {"url": "https://hooks.example.com/a", "status": "pending", "attempts": 0,
                                          "last_error": None}
    assert client.get(f"/jobs/{first}").get_json()["callback"] is None

    fake_redis.set(keys.drain_rate("mnist"), orjson.dumps({"images_per_s": 2.0, "measured_at": 0}))
    queue = client.get(second.headers["Location"]).get_json()["queue"]
    assert queue["items_ahead"] == 3 and queue["drain_rate"] == 2.0
    created = client.get(second.headers["Location"]).get_json()["created_at"]
    assert created + 1.5 <= queue["estimated_start"] <= created + 1.5 + 5  # 3 images at 2 a second, from now


def test_a_finished_job_has_no_place_in_the_queue(make_app, fake_redis, digit_104):
    app, _ = make_app()
    client = app.test_client()
    publish_heartbeat(fake_redis)
    done = client.get(client.post("/jobs", data=files(1, digit_104)).headers["Location"])
    assert done.get_json()["status"] == "done" and done.get_json()["queue"] is None
    assert_matches(done, "/jobs/{job_id}")


def test_a_full_queue_asks_to_retry_when_enough_will_have_drained(make_app, fake_redis, digit_104):
    app, worker = make_app(max_queue_depth=10, max_images_per_request=8)
    client = app.test_client()
    publish_heartbeat(fake_redis)
    worker.answer = False
    assert client.post("/jobs", data=files(8, digit_104)).status_code == 202
    # No rate measured yet: the fallback.
    refused = client.post("/jobs", data=files(6, digit_104))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert_matches(refused, "/jobs", "post")
    # 8 queued + 6 asked - 10 allowed = 4 images to drain, at half an image a second.
    fake_redis.set(keys.drain_rate("mnist"), orjson.dumps({"images_per_s": 0.5, "measured_at": 0}))
    assert client.post("/jobs", data=files(6, digit_104)).headers["Retry-After"] == "8"
    fake_redis.set(keys.drain_rate("mnist"), orjson.dumps({"images_per_s": 0.001, "measured_at": 0}))
    assert client.post("/jobs", data=files(6, digit_104)).headers["Retry-After"] == "300"  # the bound


def test_a_callback_outside_the_allow_list_is_a_422_and_queues_nothing(make_app, fake_redis, digit_104):
    app, _ = make_app(callback_allowed_urls="https://hooks.example.com/inferq/", callback_secret=SECRET)
    client = app.test_client()
    publish_heartbeat(fake_redis)
    refused = client.post("/jobs", data={**files(1, digit_104), "callback": "http://10.0.0.1/"})
    assert refused.status_code == 422 and refused.get_json()["reason"] == "callback"
    assert_matches(refused, "/jobs", "post")
    refused = client.post("/models/mnist/jobs?callback=gopher://x", data=files(1, digit_104))
    assert refused.status_code == 400
    assert fake_redis.keys(keys.job("*")) == []
