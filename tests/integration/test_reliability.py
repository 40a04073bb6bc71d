"""Nothing accepted is lost: workers killed, Redis restarted, processes stopped, all under load."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import redis

from api.app import create_app
from bench.load import ThreadedLoad
from inferq import broker, keys, priorities
from inferq.priorities import BULK, INTERACTIVE
from inferq.settings import API_SERVERS, Settings
from launcher.processes import free_port, redis_answers
from launcher.redis_server import embedded_redis_command
from tests.conftest import png_bytes
from tests.support.go_server_model import go_server_predict
from tests.support.models import build_model
from tests.support.processes import ApiProcess, WorkerProcess, worker_env
from tests.support.waiting import wait_for


class Load(ThreadedLoad):
    """Threads posting async jobs of real digits through the API app's test client until stopped, of
    each priority in turn; remembers what was accepted."""

    def __init__(self, app, images: np.ndarray, threads: int = 4, priorities: tuple[str, ...] = (BULK,)) -> None:
        super().__init__(["jobs"] * threads, join_s=30)
        self.app = app
        self.images = images
        self.priorities = priorities
        self.accepted: dict[str, list[int]] = {}  # job id -> indexes of its images
        self.statuses: list[int] = []

    def connect(self):
        return self.app.test_client()

    def send(self, lane: str, turn: int, client) -> None:
        first = turn * 3 % (len(self.images) - 3)
        indexes = [first, first + 1, first + 2][: 1 + first % 3]
        data = {"image": [(io.BytesIO(png_bytes(self.images[i])), f"{i}.png") for i in indexes],
                "priority": self.priorities[turn % len(self.priorities)]}
        response = client.post("/jobs", data=data)
        with self.lock:
            self.statuses.append(response.status_code)
            if response.status_code == 202:
                self.accepted[response.get_json()["job_id"]] = indexes
        if response.status_code != 202:
            self.stopping.wait(0.05)  # a refused client backs off, as Retry-After asks


def statuses(client: redis.Redis, job_ids: list[str]) -> list[bytes | None]:
    with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "status")
        return pipe.execute()


def done_count(client: redis.Redis, load: Load) -> int:
    with load.lock:
        ids = list(load.accepted)
    return sum(status == b"done" for status in statuses(client, ids))


def assert_every_accepted_job_answered_right(client: redis.Redis, load: Load, model_dir, timeout_s: float):
    ids = list(load.accepted)
    assert ids, "no job was accepted"
    wait_for(lambda: all(status == b"done" for status in statuses(client, ids)), timeout_s,
             f"all {len(ids)} accepted jobs to finish")
    images = load.images.reshape(-1, 784)
    expected = go_server_predict(model_dir / "1", images[: max(i for idx in load.accepted.values() for i in idx) + 1])
    app_client = load.app.test_client()
    for job_id in ids:
        results = app_client.get(f"/jobs/{job_id}").get_json()["result"]["results"]
        assert [r["labels"][0] for r in results] == [int(expected[i]) for i in load.accepted[job_id]], job_id


def test_no_accepted_job_is_lost_when_a_pool_process_then_the_whole_worker_is_killed(
        start_worker, redis_url, trained_model_dir, mnist_test):
    """With both priorities' queues filling: what was taken from either comes back."""
    worker = start_worker(trained_model_dir, pool="prefork", concurrency=1, visibility_timeout_s=3)
    app = create_app(Settings(redis_url=redis_url, queue_name="q"))
    client = redis.Redis.from_url(redis_url)
    with Load(app, mnist_test[0][:600], priorities=(BULK, INTERACTIVE)) as load:
        wait_for(lambda: done_count(client, load) >= 50, 60, "50 jobs done")
        os.kill(worker.heartbeats()[0]["pid"], signal.SIGKILL)
        before = done_count(client, load)
        wait_for(lambda: done_count(client, load) >= before + 50, 120, "the new pool process to work")
        worker.kill()
        wait_for(lambda: len(load.accepted) >= before + 150, 60, "jobs accepted while no worker runs")
        start_worker(trained_model_dir, visibility_timeout_s=3)
        # The second worker works while the load goes on; whether it also overtakes the load is the
        # machine's speed (on one core it does not), so every accepted job is waited for once the
        # load has stopped, below, and the dead worker's messages are among them.
        restarted = done_count(client, load)
        wait_for(lambda: done_count(client, load) >= restarted + 50, 120, "the second worker to work")
    assert set(load.statuses) == {202}
    assert_every_accepted_job_answered_right(client, load, trained_model_dir, 120)
    assert client.hlen("unacked") == 0
    assert [client.get(keys.queued_images("mnist", priority)) for priority in (BULK, INTERACTIVE)] == [b"0", b"0"]


def test_redis_restarted_mid_run_loses_no_accepted_job(tmp_path, trained_model_dir, mnist_test):
    port = free_port()
    command = [*embedded_redis_command(port, tmp_path, persist=True), "--appendfsync", "always"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    wait_for(lambda: redis_answers(client), 10, "Redis")
    worker = WorkerProcess(worker_env(url, trained_model_dir, "q"), tmp_path / "worker.log")
    try:
        worker.wait_serving()
        app = create_app(Settings(redis_url=url, queue_name="q"))
        with Load(app, mnist_test[0][:600]) as load:
            wait_for(lambda: done_count(client, load) >= 30, 60, "30 jobs done")
            server.send_signal(signal.SIGTERM)
            assert server.wait(30) == 0
            wait_for(lambda: 503 in load.statuses, 30, "the API to answer 503 while Redis is down")
            server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            wait_for(lambda: redis_answers(client), 10, "Redis to come back")
            accepted_before = len(load.accepted)
            wait_for(lambda: len(load.accepted) >= accepted_before + 30, 60, "the API to accept jobs again")
        assert set(load.statuses) <= {202, 503}
        assert_every_accepted_job_answered_right(client, load, trained_model_dir, 120)
        assert worker.process.poll() is None, "the worker did not survive the restart"
    finally:
        worker.stop()
        server.terminate()
        server.wait(30)




def test_a_killed_workers_claimed_message_is_demand_and_is_run_by_the_next_worker_with_no_other_traffic(
        start_worker, make_client, redis_url, tmp_path, mnist_test):
    """Scaled to zero after a worker died holding work, nothing else arrives: the in-flight list
    the autoscaler reads shows the demand, and the worker it starts runs the work, not the next
    unrelated request."""
    visibility_timeout_s, slow_s = 4, 2
    build_model(tmp_path / "models", 1, label=4, slow_seconds=slow_s)
    worker = start_worker(tmp_path / "models", visibility_timeout_s=visibility_timeout_s)
    client = make_client()
    job_id = client.post("/jobs", data={"image": [(io.BytesIO(png_bytes(mnist_test[0][0])), "a")]}).get_json()["job_id"]
    # Under CPU load from elsewhere, a worker's first batch can be slow to start.
    wait_for(lambda: client.get(f"/jobs/{job_id}").get_json()["status"] == "running", 60, "the batch to start")
    worker.kill()
    queue = priorities.queue("q.mnist", BULK)
    inflight = broker.inflight(queue)
    assert worker.client.llen(queue) == 0 and worker.client.llen(inflight) == 1
    start_worker(tmp_path / "models", visibility_timeout_s=visibility_timeout_s)
    # Restored at the new worker's start or its next sweep (VISIBILITY_TIMEOUT_S / 6), then run.
    wait_for(lambda: client.get(f"/jobs/{job_id}").get_json()["status"] == "done",
             visibility_timeout_s + slow_s + 10, "the dead worker's job to be run again")
    assert client.get(f"/jobs/{job_id}").get_json()["result"]["results"][0]["labels"] == [4]
    wait_for(lambda: worker.client.hlen("unacked") == 0, 10, "the message to be acknowledged")
    assert worker.client.llen(inflight) == 0


def test_sigterm_lets_a_worker_finish_its_batch(start_worker, make_client, tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=4, slow_seconds=3)
    worker = start_worker(tmp_path / "models", visibility_timeout_s=3600)
    client = make_client()
    job_id = client.post("/jobs", data={"image": [(io.BytesIO(png_bytes(mnist_test[0][0])), "a")]}).get_json()["job_id"]
    wait_for(lambda: client.get(f"/jobs/{job_id}").get_json()["status"] == "running", 30, "the batch to start")
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(60) == 0
    job = client.get(f"/jobs/{job_id}").get_json()
    assert job["status"] == "done" and job["result"]["results"][0]["labels"] == [4]
    assert worker.client.hlen("unacked") == 0


@pytest.mark.parametrize("server", API_SERVERS)
def test_sigterm_lets_the_api_finish_requests_in_flight(start_worker, redis_url, tmp_path, digit_104, server):
    build_model(tmp_path / "models", 1, label=9, slow_seconds=3)
    start_worker(tmp_path / "models")
    api = ApiProcess(worker_env(redis_url, tmp_path / "models", "q", api_server=server), tmp_path / "api.log",
                     free_port())
    answers: list[tuple[int, dict]] = []

    def recognize() -> None:
        import json
        import urllib.request

        body = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="104.png"\r\n\r\n'
                + digit_104 + b"\r\n--b--\r\n")
        request = urllib.request.Request(f"{api.base_url}/recognize", data=body,
                                         headers={"Content-Type": "multipart/form-data; boundary=b"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answers.append((response.status, json.loads(response.read())))

    in_flight = threading.Thread(target=recognize)
    in_flight.start()
    client = redis.Redis.from_url(redis_url)
    wait_for(lambda: client.get(keys.queued_images("mnist", INTERACTIVE)) == b"1", 30, "the request to be queued")
    started = time.monotonic()
    assert api.stop() == 0
    in_flight.join(30)
    assert answers and answers[0][0] == 200 and answers[0][1]["labels"] == [9]
    assert time.monotonic() - started >= 0.5  # the server waited for the request rather than dropping it


def test_a_stopped_worker_leaves_no_heartbeat(start_worker, tmp_path):
    build_model(tmp_path / "models", 1, label=1)
    worker = start_worker(tmp_path / "models")
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(60) == 0
    assert worker.client.zcard(keys.WORKERS) == 0
