"""Priorities and deadlines as the API takes them: defaults per route, what a request may ask, each
priority's own limit, and a sync request whose job expired."""

from __future__ import annotations

import io
import time

import pytest

from inferq.priorities import BULK, INTERACTIVE
from tests.support.stand_in import STAND_IN_VERSION


def form(png: bytes, **fields: str) -> dict:
    return {"image": [(io.BytesIO(png), "104.png")], **fields}


def test_recognize_is_interactive_and_jobs_bulk_by_default(client, worker, digit_104):
    assert client.post("/recognize", data=form(digit_104)).status_code == 200
    accepted = client.post("/jobs", data=form(digit_104))
    assert accepted.status_code == 202 and accepted.get_json()["priority"] == BULK
    assert [job.priority for job in worker.sent] == [INTERACTIVE, BULK]
    assert client.get(accepted.headers["Location"]).get_json()["priority"] == BULK


@pytest.mark.parametrize(("how", "asked", "expected"), [
    ("form", "interactive", INTERACTIVE), ("query", "interactive", INTERACTIVE), ("form", "1", INTERACTIVE),
    ("form", "bulk", BULK), ("query", "2", BULK), ("form", "0", BULK),  # 0: the route's default
])
def test_a_job_may_ask_for_a_priority(client, worker, digit_104, how, asked, expected):
    fields, query = ({"priority": asked}, "") if how == "form" else ({}, f"?priority={asked}")
    response = client.post(f"/jobs{query}", data=form(digit_104, **fields))
    assert response.status_code == 202 and response.get_json()["priority"] == expected
    assert [job.priority for job in worker.sent] == [expected]


@pytest.mark.parametrize(("fields", "words"), [
    ({"priority": "urgent"}, "priority must be one of interactive, bulk"),
    ({"priority": "3"}, "priority must be one of"),
    ({"timeout_ms": "soon"}, "timeout_ms must be a positive number"),
    ({"timeout_ms": "-5"}, "timeout_ms must be a positive number"),
    ({"timeout_ms": "nan"}, "timeout_ms must be a positive number"),
])
def test_a_bad_priority_or_timeout_is_a_400_and_nothing_is_queued(client, worker, digit_104, fields, words):
    response = client.post("/recognize", data=form(digit_104, **fields))
    assert response.status_code == 400 and words in response.get_json()["error"]
    assert worker.sent == []


def test_a_sync_job_carries_the_sync_timeout_as_its_deadline_or_a_shorter_one_asked(client, worker, digit_104):
    before = time.time()
    client.post("/recognize", data=form(digit_104))
    client.post("/recognize?timeout_ms=50", data=form(digit_104))
    client.post("/jobs", data=form(digit_104))
    client.post("/jobs", data=form(digit_104, timeout_ms="2000"))
    sync, short, bulk, bounded = worker.sent
    sync_timeout = 0.3  # the stand-in apps' SYNC_TIMEOUT_S
    assert before + sync_timeout <= sync.deadline <= time.time() + sync_timeout
    assert before + 0.05 <= short.deadline <= time.time() + 0.05
    assert bulk.deadline is None
    assert before + 2 <= bounded.deadline <= time.time() + 2
    assert all(before <= job.queued_at <= time.time() for job in worker.sent)


def test_a_sync_job_that_expired_is_a_504_with_its_job_id(client, worker, digit_104):
    worker.expire = True
    response = client.post("/recognize", data=form(digit_104))
    assert response.status_code == 504
    body = response.get_json()
    assert "deadline passed" in body["error"] and body["job_id"]
    job = client.get(f"/jobs/{body['job_id']}").get_json()
    assert job["status"] == "expired" and "deadline passed" in job["error"] and job["result"] is None


def test_a_full_bulk_queue_refuses_bulk_work_and_takes_interactive_work(make_app, serve, digit_104):
    serve()
    app, worker = make_app(max_queue_depth=2, max_interactive_queue_depth=3, max_images_per_request=2)
    worker.answer = False  # nothing drains
    client = app.test_client()
    assert client.post("/jobs", data=form(digit_104)).status_code == 202
    assert client.post("/jobs", data=form(digit_104)).status_code == 202
    refused = client.post("/jobs", data=form(digit_104))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.get_json() == {"error": "model 'mnist': the bulk queue is full (2 items waiting); try again "
                                           "shortly", "reason": "queue_full", "priority": BULK, "model": "mnist"}
    accepted = [client.post("/jobs", data=form(digit_104, priority="interactive")) for _ in range(3)]
    assert [response.status_code for response in accepted] == [202] * 3
    assert client.post("/jobs", data=form(digit_104, priority="interactive")).get_json()["priority"] == INTERACTIVE
    status = client.get("/status").get_json()["lanes"]
    assert status == {"interactive": {"queued_images": 3, "limit": 3}, "bulk": {"queued_images": 2, "limit": 2}}


def test_kserve_takes_tritons_priority_and_timeout_parameters(client, worker):
    request = {"inputs": [{"name": "inputdata", "datatype": "UINT8", "shape": [1, 784], "data": [0] * 784}],
               "parameters": {"priority": 2, "timeout": 1_500_000}}
    before = time.time()
    response = client.post("/v2/models/mnist/infer", json=request)
    assert response.status_code == 200 and response.get_json()["model_version"] == str(STAND_IN_VERSION)
    [job] = worker.sent
    assert job.priority == BULK and before + 0.3 <= job.deadline <= time.time() + 0.3  # the shorter of both
    request["parameters"] = {"priority": "someday"}
    assert client.post("/v2/models/mnist/infer", json=request).status_code == 400


def test_tf_serving_predict_takes_the_query_parameters(client, worker):
    response = client.post("/v1/models/mnist:predict?priority=bulk", json={"instances": [[0] * 784]})
    assert response.status_code == 200
    assert [job.priority for job in worker.sent] == [BULK]
