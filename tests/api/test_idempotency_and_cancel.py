"""``Idempotency-Key`` on the job routes and ``DELETE /jobs/<id>``, with the stand-in worker on fakeredis."""

from __future__ import annotations

import io
import threading
import uuid

import numpy as np
import orjson
import pytest

from inferq import keys
from tests.api.test_openapi import assert_matches
from tests.conftest import png_bytes
from tests.support.stand_in import publish_heartbeat
from tests.support.waiting import wait_for

KEY = {"Idempotency-Key": '"7f1c5a2e-0d0b-4a4e-9f6a-3c1f1f1f1f1f"'}


def files(*names, data):
    return {"image": [(io.BytesIO(data), name) for name in names]}


@pytest.fixture
def held(make_app, fake_redis):
    """An app whose stand-in worker leaves every job queued, and the worker."""
    publish_heartbeat(fake_redis)
    app, worker = make_app()
    worker.answer = False
    return app.test_client(), worker


def queued(fake_redis) -> int:
    return int(fake_redis.get(keys.queued_images("mnist", "bulk")) or 0)


def test_the_same_key_and_request_twice_is_one_job(held, fake_redis, digit_104):
    client, worker = held
    first = client.post("/jobs", data=files("a.png", "b.png", data=digit_104), headers=KEY)
    again = client.post("/jobs", data=files("a.png", "b.png", data=digit_104), headers=KEY)
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert len(worker.sent) == 1 and queued(fake_redis) == 2
    assert_matches(again, "/jobs", "post")
    # The retry is answered the job as it stands now.
    worker.store.cancel(first.get_json()["job_id"])
    assert client.post("/jobs", data=files("a.png", "b.png", data=digit_104), headers=KEY).get_json()["status"] \
        == "cancelled"


@pytest.mark.parametrize("change", [
    {"data": {"image": [(io.BytesIO(png_bytes(np.zeros((28, 28), np.uint8))), "a.png"),
                        (io.BytesIO(png_bytes(np.full((28, 28), 255, np.uint8))), "b.png")]}},
    {"names": ("c.png", "b.png")},
    {"path": "/jobs?priority=interactive"},
    {"path": "/models/mnist/versions/3/jobs"},
])
def test_the_same_key_with_another_request_is_a_422(held, digit_104, change):
    client, worker = held
    assert client.post("/jobs", data=files("a.png", "b.png", data=digit_104), headers=KEY).status_code == 202
    data = change.get("data") or files(*change.get("names", ("a.png", "b.png")), data=digit_104)
    refused = client.post(change.get("path", "/jobs"), data=data, headers=KEY)
    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["reason"] == "idempotency_key_reused"
    assert_matches(refused, "/jobs", "post")
    assert len(worker.sent) == 1


def test_keys_are_the_callers_and_the_models_own(held, digit_104):
    client, worker = held
    for auth in ("Bearer team-a", "Bearer team-b"):
        assert client.post("/jobs", data=files("a.png", data=digit_104),
                           headers={**KEY, "Authorization": auth}).status_code == 202
    assert len({job.job_id for job in worker.sent}) == 2


@pytest.mark.parametrize("key", ['""', "", "x" * 256, '"caf\u00e9"', '"a\tb"'])
def test_a_malformed_key_is_a_400(held, digit_104, key):
    client, worker = held
    refused = client.post("/jobs", data=files("a.png", data=digit_104), headers={"Idempotency-Key": key})
    assert refused.status_code == 400 and refused.get_json()["reason"] == "idempotency_key"
    assert worker.sent == []


def test_a_request_refused_frees_its_key_for_the_retry(held, digit_104):
    client, worker = held
    worker.broker_down = True
    assert client.post("/jobs", data=files("a.png", data=digit_104), headers=KEY).status_code == 503
    worker.broker_down = False
    retried = client.post("/jobs", data=files("a.png", data=digit_104), headers=KEY)
    assert retried.status_code == 202 and len(worker.sent) == 1


def test_a_key_still_being_admitted_is_a_409(held, fake_redis, digit_104):
    client, worker = held
    first = client.post("/jobs", data=files("a.png", data=digit_104), headers=KEY).get_json()
    # As the key reads while its first request is being admitted.
    [name] = fake_redis.keys(keys.idempotency("*"))
    fake_redis.set(name, orjson.dumps({**orjson.loads(fake_redis.get(name)), "state": "pending"}))
    busy = client.post("/jobs", data=files("a.png", data=digit_104), headers=KEY)
    assert busy.status_code == 409 and busy.get_json()["reason"] == "idempotency_key_in_flight"
    assert busy.headers["Retry-After"]
    assert_matches(busy, "/jobs", "post")
    assert len(worker.sent) == 1 and first["job_id"] == worker.sent[0].job_id


def test_cancelling_a_queued_job_counts_it_down_and_answers_it_cancelled(held, fake_redis, digit_104):
    client, worker = held
    job = client.post("/jobs", data=files("a.png", "b.png", data=digit_104)).get_json()
    assert queued(fake_redis) == 2
    cancelled = client.delete(job["location"])
    assert cancelled.status_code == 200
    assert_matches(cancelled, "/jobs/{job_id}", "delete")
    body = cancelled.get_json()
    assert body["status"] == "cancelled" and body["result"] is None and "cancelled" in body["error"]
    assert queued(fake_redis) == 0
    assert client.get(job["location"]).get_json()["status"] == "cancelled"
    assert client.delete(job["location"]).status_code == 200  # again: as it is


def test_a_finished_job_is_not_cancelled_and_an_unknown_one_is_404(make_app, fake_redis, digit_104):
    publish_heartbeat(fake_redis)
    client = make_app()[0].test_client()
    job = client.post("/jobs", data=files("a.png", data=digit_104)).get_json()
    refused = client.delete(job["location"])
    assert refused.status_code == 409 and refused.get_json()["job_status"] == "done"
    assert_matches(refused, "/jobs/{job_id}", "delete")
    assert client.get(job["location"]).get_json()["status"] == "done"
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        missing = client.delete(f"/jobs/{unknown}")
        assert missing.status_code == 404
        assert_matches(missing, "/jobs/{job_id}", "delete")


def test_a_sync_request_whose_job_is_cancelled_is_told_so(make_app, fake_redis, digit_104):
    publish_heartbeat(fake_redis)
    app, worker = make_app(sync_timeout_s=10)
    worker.answer = False
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(
        app.test_client().post("/recognize", data=files("a.png", data=digit_104))))
    waiting.start()
    job = wait_for(lambda: worker.sent, 5, "the job to be queued")[0]
    assert app.test_client().delete(f"/jobs/{job.job_id}").status_code == 200
    waiting.join(10)
    [answer] = answers
    assert answer.status_code == 409
    assert answer.get_json()["reason"] == "cancelled" and answer.get_json()["job_id"] == job.job_id
    assert_matches(answer, "/recognize", "post")


def test_a_waited_request_sent_again_with_its_key_is_answered_its_jobs_outcome(make_app, fake_redis, digit_104):
    publish_heartbeat(fake_redis)
    app, worker = make_app()
    client = app.test_client()
    first = client.post("/recognize", data=files("a.png", data=digit_104), headers=KEY)
    again = client.post("/recognize", data=files("a.png", data=digit_104), headers=KEY)
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert len(worker.sent) == 1
    other = client.post("/recognize", data=files("b.png", data=digit_104), headers=KEY)
    assert other.status_code == 422 and len(worker.sent) == 1


def test_a_handed_back_request_sent_again_with_its_key_is_handed_back_its_job(held, digit_104):
    client, worker = held
    asked = {**KEY, "Prefer": "respond-async"}
    first = client.post("/recognize", data=files("a.png", data=digit_104), headers=asked)
    again = client.post("/recognize", data=files("a.png", data=digit_104), headers=asked)
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Preference-Applied"] == "respond-async"
    assert len(worker.sent) == 1
    # Without respond-async the retry waits as a sync request does, and is told to poll.
    waited = client.post("/recognize", data=files("a.png", data=digit_104), headers=KEY)
    assert waited.status_code == 504 and waited.get_json()["job_id"] == first.get_json()["job_id"]
    client.delete(first.headers["Location"])
    cancelled = client.post("/recognize", data=files("a.png", data=digit_104), headers=KEY)
    assert cancelled.status_code == 409 and cancelled.get_json()["reason"] == "cancelled"
    assert len(worker.sent) == 1


def test_kserve_infer_with_a_key_sent_twice_is_one_job(make_app, fake_redis, mnist_test):
    publish_heartbeat(fake_redis)
    app, worker = make_app()
    client = app.test_client()
    infer = {"inputs": [{"name": "inputdata", "shape": [1, 784], "datatype": "UINT8",
                         "data": mnist_test[0][0].reshape(-1).tolist()}]}
    first = client.post("/v2/models/mnist/infer", json=infer, headers=KEY)
    again = client.post("/v2/models/mnist/infer", json=infer, headers=KEY)
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert len(worker.sent) == 1
