"""Waiting a while, then a job handed back (``Prefer: respond-async, wait=N``), long polls
(``GET /jobs/<id>?wait=S``), progress and the event stream (``GET /jobs/<id>/events``): black-box,
on a real Redis and real workers."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.request
from email.message import Message

import numpy as np
import pytest

from api.images import job_stream
from inferq.client import Client
from inferq.client.job import POLL_WAIT_S
from launcher.processes import free_port
from tests.conftest import png_bytes
from tests.support.models import build_model
from tests.support.processes import ApiProcess, worker_env
from tests.support.specs import mnist_spec, publish
from tests.support.waiting import wait_for

#: A start of a worker (TensorFlow, a model) is slow on a shared machine.
JOB_TIMEOUT_S = 120


def images(pixels: np.ndarray, count: int = 1) -> dict:
    return {"image": [(io.BytesIO(png_bytes(pixels[i % len(pixels)])), f"{i}.png") for i in range(count)]}


def tensor_bodies(pixels: np.ndarray) -> dict[str, dict]:
    rows = pixels[:2].reshape(2, -1).tolist()
    return {
        "/v2/models/mnist/infer": {"inputs": [{"name": "inputdata", "shape": [2, 784], "datatype": "UINT8",
                                               "data": rows}]},
        "/v1/models/mnist:predict": {"instances": rows},
        "/v1/models/mnist:classify": {"examples": [{"inputdata": row} for row in rows]},
    }


def timed(call, *args, **kwargs):
    """``call(*args, **kwargs)``, and the seconds it took."""
    started = time.monotonic()
    response = call(*args, **kwargs)
    return response, time.monotonic() - started


def test_prefer_answered_in_time_is_the_usual_answer_on_every_waiting_route(start_worker, make_client, tmp_path,
                                                                              mnist_test):
    build_model(tmp_path / "models", 1, label=2)
    start_worker(tmp_path / "models")
    client = make_client()
    prefer = {"Prefer": "respond-async, wait=20"}
    plain = client.post("/recognize", data=images(mnist_test[0]))
    preferred = client.post("/recognize", data=images(mnist_test[0]), headers=prefer)
    assert preferred.status_code == plain.status_code == 200
    assert "Preference-Applied" not in preferred.headers
    assert preferred.get_json().keys() == plain.get_json().keys() and preferred.get_json()["labels"] == [2]
    several = client.post("/models/mnist/versions/1/recognize", data=images(mnist_test[0], 3), headers=prefer)
    assert several.status_code == 200 and [r["labels"] for r in several.get_json()["results"]] == [[2]] * 3
    for path, body in tensor_bodies(mnist_test[0]).items():
        usual, answered = client.post(path, json=body), client.post(path, json=body, headers=prefer)
        assert answered.status_code == usual.status_code == 200, (path, answered.get_json())
        assert answered.get_json() == usual.get_json(), path


def test_prefer_with_no_worker_hands_back_jobs_that_outlive_the_sync_deadline_finish_and_are_polled(
        start_worker, make_client, redis_url, tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=2)
    publish(redis_url, mnist_spec(1))  # admitted, but no worker runs them yet
    # A sync deadline far shorter than the waits: a job handed back must not expire by it.
    client = make_client(sync_timeout_s=0.5, prefer_wait_max_s=1.5)
    handed, elapsed = timed(lambda: client.post("/recognize", data=images(mnist_test[0], 2),
                                                headers={"Prefer": "respond-async, wait=1"}))
    assert handed.status_code == 202, handed.get_json()
    assert 1 <= elapsed < 2.5
    assert handed.headers["Preference-Applied"] == "respond-async, wait=1"
    body = handed.get_json()
    assert body == {"job_id": body["job_id"], "status": "queued", "model": "mnist", "priority": "interactive",
                    "images": 2, "location": f"/jobs/{body['job_id']}"}
    assert handed.headers["Location"] == body["location"]
    locations = {"/recognize": (body["location"], 2)}

    # Each other waiting route, each way of asking: respond-async alone is answered at once; a wait
    # past PREFER_WAIT_MAX_S is cut to it; a wait that is not a number is ignored, as hints are.
    asks = {"/v2/models/mnist/infer": ("respond-async", "respond-async", (0, 0.5)),
            "/v1/models/mnist:predict": ('wait=100; x="a,b", Respond-Async', "respond-async, wait=1.5", (1.5, 3)),
            "/v1/models/mnist:classify": ("respond-async, wait=soon", "respond-async", (0, 0.5))}
    for path, body in tensor_bodies(mnist_test[0]).items():
        prefer, applied, (least, most) = asks[path]
        response, elapsed = timed(client.post, path, json=body, headers={"Prefer": prefer})
        assert response.status_code == 202 and response.headers["Preference-Applied"] == applied, path
        assert least <= elapsed < most, (path, elapsed)
        assert response.get_json()["images"] == 2
        locations[path] = (response.headers["Location"], 2)

    # Without respond-async nothing changes: the sync request's deadline ends it, and its job.
    unpreferred = client.post("/recognize", data=images(mnist_test[0]), headers={"Prefer": "wait=10"})
    assert unpreferred.status_code == 504
    expired_job = unpreferred.get_json()["job_id"]

    start_worker(tmp_path / "models")
    for path, (location, count) in locations.items():
        job = client.get(f"{location}?wait={JOB_TIMEOUT_S}").get_json()
        assert job["status"] == "done", (path, job)
        assert [result["labels"] for result in job["result"]["results"]] == [[2]] * count, path
        assert job["progress"] == {"items_done": count, "items": count}
    assert client.get(f"/jobs/{expired_job}?wait=30").get_json()["status"] == "expired"


def test_a_long_poll_returns_as_soon_as_the_job_ends(start_worker, make_client, tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=2, slow_seconds=1.0)
    start_worker(tmp_path / "models")
    client = make_client()
    lags = []
    for _ in range(3):
        job_id = client.post("/jobs", data=images(mnist_test[0])).get_json()["job_id"]
        polled, elapsed = timed(client.get, f"/jobs/{job_id}?wait=30")
        returned_at = time.time()
        job = polled.get_json()
        assert polled.status_code == 200 and job["status"] == "done", job
        assert elapsed < 10
        lags.append(returned_at - job["finished_at"])
    # Woken by the finish itself: within a small margin of it, never at the 30 s asked for.
    assert all(0 <= lag < 0.3 for lag in lags), lags
    # A wait the model cannot meet (none: 0.3 is no delta-seconds, so ignored): handed back, it finishes.
    handed = client.post("/recognize", data=images(mnist_test[0]), headers={"Prefer": "respond-async, wait=0.3"})
    assert handed.status_code == 202 and handed.headers["Preference-Applied"] == "respond-async"
    job = client.get(f"{handed.headers['Location']}?wait=30").get_json()
    assert job["status"] == "done" and job["result"]["results"][0]["labels"] == [2]
    print(f"long poll returned {', '.join(f'{lag * 1000:.1f}' for lag in lags)} ms after the jobs' finished_at")


def test_a_long_poll_of_a_job_that_does_not_end_returns_at_its_wait_and_bad_waits_are_400(make_client, redis_url,
                                                                                         mnist_test):
    publish(redis_url, mnist_spec(1))  # no worker: the job stays queued
    client = make_client(job_wait_max_s=1.5)
    location = client.post("/jobs", data=images(mnist_test[0])).headers["Location"]
    polled, elapsed = timed(lambda: client.get(f"{location}?wait=0.7"))
    assert polled.status_code == 200 and polled.get_json()["status"] == "queued"
    assert 0.7 <= elapsed < 1.5
    capped, elapsed = timed(lambda: client.get(f"{location}?wait=600"))
    assert capped.status_code == 200 and 1.5 <= elapsed < 2.5  # JOB_WAIT_MAX_S
    at_once, elapsed = timed(lambda: client.get(f"{location}?wait=0"))
    assert at_once.status_code == 200 and elapsed < 0.5
    for bad in ("soon", "-1", "nan", "inf", ""):
        refused = client.get(f"{location}?wait={bad}")
        assert refused.status_code == 400 and "wait" in refused.get_json()["error"], bad
    unknown, elapsed = timed(lambda: client.get("/jobs/00000000-0000-4000-8000-000000000000?wait=5"))
    assert unknown.status_code == 404 and elapsed < 0.5


def test_the_event_stream_of_a_job_that_does_not_end_keeps_alive_and_ends_at_its_limit(make_client, redis_url,
                                                                                      mnist_test, monkeypatch):
    monkeypatch.setattr(job_stream, "KEEPALIVE_S", 0.3)
    publish(redis_url, mnist_spec(1))  # no worker: the job stays queued
    client = make_client(job_events_max_s=1.2)
    location = client.post("/jobs", data=images(mnist_test[0])).headers["Location"]
    started = time.monotonic()
    response = client.get(f"{location}/events", buffered=False)
    text = "".join(chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in response.response)
    took = time.monotonic() - started
    assert 1.2 <= took < 3, took
    blocks = [block for block in text.split("\n\n") if block]
    assert blocks[0].startswith("id: queued:0\nevent: status\ndata: ")
    assert json.loads(blocks[0].split("data: ", 1)[1])["status"] == "queued"
    assert blocks[1:] and all(block == ": keep-alive" for block in blocks[1:]), blocks


def read_events(client, path: str, events: list[dict], headers: dict | None = None) -> int:
    """Append each server-sent event of ``path`` to ``events`` as it comes; the status once it ends."""
    response = client.get(path, headers=headers or {}, buffered=False)
    if response.status_code != 200:
        return response.status_code
    assert response.mimetype == "text/event-stream"
    pending = ""
    for chunk in response.response:
        pending += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in pending:
            block, pending = pending.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
            if fields:
                events.append({"id": fields["id"], "event": fields["event"], **json.loads(fields["data"])})
    return 200


def test_the_events_of_a_job_of_many_calls_show_it_queued_running_progressing_and_done_then_end(
        start_worker, make_client, redis_url, tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=2, slow_seconds=0.05)
    publish(redis_url, mnist_spec(1))
    client = make_client(max_batch_size=4)
    items = 200  # 50 model calls of 4
    job_id = client.post("/jobs", data=images(mnist_test[0], items)).get_json()["job_id"]
    events: list[dict] = []
    ended: list[int] = []
    reader = threading.Thread(target=lambda: ended.append(
        read_events(client.application.test_client(), f"/jobs/{job_id}/events", events)), daemon=True)
    reader.start()
    wait_for(lambda: events, 10, "the stream's first event")

    start_worker(tmp_path / "models", max_batch_size=4)
    # GET /jobs/<id> of the running job says how far it is.
    running = wait_for(lambda: (job := client.get(f"/jobs/{job_id}").get_json())["status"] != "queued" and job,
                       JOB_TIMEOUT_S, "the job to start")
    midway = wait_for(lambda: (job := client.get(f"/jobs/{job_id}").get_json())["progress"]["items_done"] > 0
                      and job, 30, "progress")
    assert running["status"] == "running" and midway["status"] == "running", (running, midway)
    assert 0 < midway["progress"]["items_done"] < items and midway["progress"]["items"] == items

    reader.join(60)
    assert not reader.is_alive() and ended == [200], "the stream ends with the job"
    statuses = [event["status"] for event in events]
    assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == ["queued", "running", "done"]
    done = [event["progress"]["items_done"] for event in events]
    assert done == sorted(done) and done[0] == 0 and done[-1] == items
    assert len([k for k in done if 0 < k < items]) >= 5, done  # a change per call or so, not only the ends
    assert all(event["event"] == "status" and event["id"] == f"{event['status']}:{event['progress']['items_done']}"
               for event in events)
    assert events[-1]["finished_at"] and "result" not in events[-1]

    # A reconnection after the end (an EventSource's) is told there is no more; a new look gets the end.
    assert read_events(client, f"/jobs/{job_id}/events", [], headers={"Last-Event-ID": f"done:{items}"}) == 204
    again: list[dict] = []
    assert read_events(client, f"/jobs/{job_id}/events", again) == 200
    assert [event["status"] for event in again] == ["done"]
    assert client.get("/jobs/00000000-0000-4000-8000-000000000000/events").status_code == 404


#: Each HTTP server, and how many long polls it holds at once: a greenlet each under gevent, a thread
#: each of the API_THREADS (8 here) under granian.
SERVERS = {"gunicorn-gevent": ({"api_server": "gunicorn", "api_worker_class": "gevent"}, 20),
           "granian": ({"api_server": "granian"}, 6)}


@pytest.mark.parametrize("server", SERVERS)
def test_under_each_http_server_waits_hold_no_request_past_their_time(start_worker, redis_url, tmp_path, mnist_test,
                                                                      server):
    """The API as it is deployed: under gevent, the listener thread is a greenlet too."""
    build_model(tmp_path / "models", 1, label=2)
    publish(redis_url, mnist_spec(1))
    settings, concurrent_polls = SERVERS[server]
    env = worker_env(redis_url, tmp_path / "models", "q", job_events_max_s=30, **settings)
    api = ApiProcess(env, tmp_path / "api.log", free_port())
    try:
        def send(path: str, body: bytes | None, headers: dict) -> tuple[int, Message, dict]:
            request = urllib.request.Request(f"{api.base_url}{path}", data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, response.headers, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, error.headers, json.loads(error.read())

        rows = mnist_test[0][:2].reshape(2, -1).tolist()
        infer = json.dumps({"instances": rows}).encode()
        (status, headers, body), elapsed = timed(lambda: send(
            "/v1/models/mnist:predict", infer, {"Content-Type": "application/json",
                                                "Prefer": "respond-async, wait=1"}))
        assert status == 202 and headers["Preference-Applied"] == "respond-async, wait=1" and 1 <= elapsed < 2.5
        location = headers["Location"]
        # Long polls at once: every one returns at its wait, none holds more.
        results: list[tuple[int, float]] = []

        def poll() -> None:
            (code, _, job), took = timed(lambda: send(f"{location}?wait=1", None, {}))
            results.append((code, took))

        pollers = [threading.Thread(target=poll) for _ in range(concurrent_polls)]
        for poller in pollers:
            poller.start()
        for poller in pollers:
            poller.join(10)
        assert len(results) == concurrent_polls, results
        assert all(code == 200 and 1 <= took < 3 for code, took in results), results

        events: list[str] = []

        def stream() -> None:
            with urllib.request.urlopen(f"{api.base_url}{location}/events", timeout=60) as response:
                for line in response:
                    if line.startswith(b"data: "):
                        events.append(json.loads(line[6:])["status"])

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        wait_for(lambda: events, 10, "the first event")
        # The Python client waits with long polls: a few round trips, not one each quarter second.
        job = Client(api.base_url).submit(mnist_test[0][:3])
        polls_before, started = job_polls(api.base_url), time.monotonic()
        collected: list = []
        collector = threading.Thread(target=lambda: collected.append(job.wait(JOB_TIMEOUT_S)), daemon=True)
        collector.start()
        start_worker(tmp_path / "models")
        streamer.join(JOB_TIMEOUT_S)
        assert not streamer.is_alive() and events[0] == "queued" and events[-1] == "done", events
        collector.join(JOB_TIMEOUT_S)
        took, polls = time.monotonic() - started, job_polls(api.base_url) - polls_before
        assert [answer.label for answer in collected[0]] == [2, 2, 2]
        assert 1 <= polls <= took / POLL_WAIT_S + 2, (polls, took)
        code, _, job = send(f"{location}?wait=5", None, {})
        assert code == 200 and job["status"] == "done" and len(job["result"]["results"]) == 2
    finally:
        assert api.stop() == 0


def job_polls(base_url: str) -> float:
    """The API's count of answered ``GET /jobs/<id>`` requests (its metrics)."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith('inferq_http_requests_total{method="GET",route="/jobs/<job_id>",status="200"}'))
