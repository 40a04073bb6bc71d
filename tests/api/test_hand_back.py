"""A waiting request's job handed back (``Prefer: respond-async``), on the stand-in worker: what the
job carries, and when a request is not handed back."""

from __future__ import annotations

import io
import time

import pytest


def upload(data: bytes) -> dict:
    return {"image": [(io.BytesIO(data), "a.png")]}


def test_a_job_handed_back_has_no_deadline_but_the_clients_own(app_and_worker, digit_104):
    app, worker = app_and_worker  # SYNC_TIMEOUT_S 0.3
    client = app.test_client()
    worker.answer = False
    before = time.time()
    handed = client.post("/recognize", data=upload(digit_104), headers={"Prefer": "respond-async"})
    assert handed.status_code == 202
    assert worker.sent[-1].job_id == handed.get_json()["job_id"] and worker.sent[-1].deadline is None
    own = client.post("/recognize?timeout_ms=5000", data=upload(digit_104), headers={"Prefer": "respond-async"})
    assert own.status_code == 202 and before + 5 <= worker.sent[-1].deadline <= time.time() + 5
    plain = client.post("/recognize", data=upload(digit_104))
    assert plain.status_code == 504 and worker.sent[-1].deadline <= time.time() + 0.3


def test_a_deadline_shorter_than_the_wait_ends_it_as_without_the_header(app_and_worker, digit_104):
    app, worker = app_and_worker
    worker.answer = False
    started = time.monotonic()
    response = app.test_client().post("/recognize?timeout_ms=200", data=upload(digit_104),
                                      headers={"Prefer": "respond-async, wait=5"})
    assert response.status_code == 504 and time.monotonic() - started < 2
    assert "job_id" in response.get_json()


@pytest.mark.parametrize("prefer", ["respond-async, wait=5", "respond-async", "wait=5", "bogus;;=="])
def test_an_answer_ready_in_time_is_the_usual_one_whatever_is_preferred(client, digit_104, prefer):
    usual = client.post("/recognize", data=upload(digit_104)).get_json()
    answered = client.post("/recognize", data=upload(digit_104), headers={"Prefer": prefer})
    # respond-async alone hands back at once unless the answer is there: the stand-in answers as
    # the job is queued, so it is.
    assert answered.status_code == 200 and "Preference-Applied" not in answered.headers
    assert {key: value for key, value in answered.get_json().items() if key != "job_id"} == {
        key: value for key, value in usual.items() if key != "job_id"}
