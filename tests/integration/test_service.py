"""The whole system as users meet it: real Redis, a real worker on the real model, the API under each of
its HTTP servers."""

from __future__ import annotations

import concurrent.futures
import io
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis

from inferq.settings import API_WORKER_CLASSES
from launcher.processes import free_port
from tests.conftest import MNIST_DIR, REPO, png_bytes
from tests.support.models import build_model
from tests.support.processes import ApiProcess, worker_env
from tests.support.specs import mnist_spec, publish
from tests.support.stand_in import BROKER_UNREACHABLE
from tests.support.waiting import wait_for

#: Each way the API is served: gunicorn with each of its worker classes, and granian.
SERVERS = {
    **{f"gunicorn-{worker_class}": {"api_server": "gunicorn", "api_worker_class": worker_class}
       for worker_class in API_WORKER_CLASSES},
    "granian": {"api_server": "granian"},
}


@pytest.fixture(scope="module")
def mnist_png(tmp_path_factory) -> Path:
    """``mnist_png/`` as the README makes it: ``python -m trainer export-png --split testing --out mnist_png``."""
    out = tmp_path_factory.mktemp("checkout") / "mnist_png"
    subprocess.run([sys.executable, "-m", "trainer", "export-png", "--split", "testing", "--out", str(out),
                    "--data", str(MNIST_DIR), "--no-download"], cwd=REPO, check=True, capture_output=True)
    return out


@pytest.mark.parametrize("server", SERVERS)
def test_the_seeds_curl_example_answers_as_the_seed_did(start_worker, redis_url, trained_model_dir, mnist_png,
                                                         tmp_path, server):
    start_worker(trained_model_dir)
    env = worker_env(redis_url, trained_model_dir, "q", **SERVERS[server])
    api = ApiProcess(env, tmp_path / "api.log", free_port())
    try:
        answer = subprocess.run(
            ["curl", "-s", f"{api.base_url.replace('127.0.0.1', 'localhost')}/recognize",
             "-F", "image=@./mnist_png/testing/9/104.png"],
            cwd=mnist_png.parent, capture_output=True, text=True, check=True).stdout
        body = json.loads(answer)
        assert {key: body[key] for key in ("filename", "labels")} == {"filename": "104.png", "labels": [9]}
        assert answer.startswith('{"filename":"104.png","labels":[9]')
    finally:
        assert api.stop() == 0


@pytest.mark.parametrize("server", SERVERS)
def test_concurrent_requests_each_get_their_own_answer_and_metrics_count_them_all(start_worker, redis_url,
                                                                                    trained_model_dir, mnist_test,
                                                                                    tmp_path, server):
    """Requests that arrive together share admissions and messages: none may get another's answer. Two
    API processes share the requests, and one scrape counts those of both."""
    start_worker(trained_model_dir)
    env = worker_env(redis_url, trained_model_dir, "q", **SERVERS[server])
    api = ApiProcess(env, tmp_path / "api.log", free_port(), processes=2)
    images, labels = mnist_test

    def recognize(i: int) -> tuple[int, dict]:
        body, content_type = multipart_image(png_bytes(images[i]), f"{i}.png")
        request = urllib.request.Request(f"{api.base_url}/recognize", data=body,
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=30) as response:
            return i, json.loads(response.read())

    try:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(recognize, range(0, 6400, 50)))
        with urllib.request.urlopen(f"{api.base_url}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    finally:
        assert api.stop() == 0
    # The API's own metrics, written by both processes to shared files: a scrape answered by one
    # process from its own counts alone would show only its share.
    assert f'inferq_http_requests_total{{method="POST",route="/recognize",status="200"}} {len(answers)}.0' in metrics
    assert [answer["filename"] for _, answer in answers] == [f"{i}.png" for i, _ in answers]
    correct = sum(answer["labels"] == [int(labels[i])] for i, answer in answers)
    assert correct >= 0.95 * len(answers)
    assert len({answer["job_id"] for _, answer in answers}) == len(answers)


def multipart_image(data: bytes, filename: str) -> tuple[bytes, str]:
    boundary = "inferqtestboundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_the_real_model_reads_real_digits(start_worker, make_client, trained_model_dir, mnist_test):
    start_worker(trained_model_dir)
    client = make_client()
    images, labels = mnist_test
    chosen = range(0, 10000, 50)
    data = {"image": [(io.BytesIO(png_bytes(images[i])), f"{i}.png") for i in chosen]}
    results = client.post("/recognize", data=data).get_json()["results"]
    correct = sum(result["labels"] == [int(labels[i])] for result, i in zip(results, chosen, strict=True))
    assert correct >= 0.97 * len(chosen)
    assert all(abs(sum(result["probabilities"]) - 1) < 1e-3 for result in results)


def test_a_sync_request_that_outlasts_its_timeout_is_a_504_and_the_job_finishes(start_worker, make_client,
                                                                                 tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=2, slow_seconds=2)
    start_worker(tmp_path / "models")
    client = make_client(sync_timeout_s=0.2)
    response = client.post("/recognize", data={"image": [(io.BytesIO(png_bytes(mnist_test[0][0])), "a.png")]})
    assert response.status_code == 504
    job_id = response.get_json()["job_id"]
    job = wait_for(lambda: (j := client.get(f"/jobs/{job_id}").get_json())["status"] == "done" and j, 60,
                   "the job to finish")
    assert job["result"]["results"][0]["labels"] == [2]


def test_backpressure_on_a_real_redis(make_client, redis_url, digit_104):
    publish(redis_url, mnist_spec(1))  # as a worker that ran before would have: the API takes the work
    client = make_client(max_queue_depth=4, max_images_per_request=4)  # no worker: nothing drains
    two_images = lambda: {"image": [(io.BytesIO(digit_104), "a"), (io.BytesIO(digit_104), "b")]}  # noqa: E731
    accepted = [client.post("/jobs", data=two_images()).status_code for _ in range(3)]
    assert accepted == [202, 202, 503]
    refused = client.post("/recognize", data={"image": [(io.BytesIO(digit_104), "a")], "priority": "bulk"})
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert "bulk queue is full" in refused.get_json()["error"]
    # Interactive work has a limit of its own: it is taken, though no worker answers it in time.
    taken = client.post("/recognize?timeout_ms=200", data={"image": [(io.BytesIO(digit_104), "a")]})
    assert taken.status_code == 504 and taken.get_json()["job_id"]


def test_the_api_answers_503_while_redis_is_down_and_recovers_by_itself(tmp_path, digit_104):
    from api.app import create_app
    from inferq.settings import Settings
    from launcher.redis_server import embedded_redis_command

    port = free_port()
    client = create_app(Settings(redis_url=f"redis://127.0.0.1:{port}/0", queue_name="q")).test_client()
    form = lambda: {"image": [(io.BytesIO(digit_104), "104.png")]}  # noqa: E731
    down = client.post("/jobs", data=form())
    assert down.status_code == 503
    assert down.get_json() == BROKER_UNREACHABLE
    assert client.get("/readyz").get_json()["reason"] == "broker"

    redis_server = subprocess.Popen(embedded_redis_command(port, tmp_path, persist=False), stdout=subprocess.DEVNULL)
    try:
        # A Redis that comes back empty: the model's description is written again, as the workers'
        # heartbeats would write it, so that the API takes work for it.
        wait_for(lambda: publish_when_up(f"redis://127.0.0.1:{port}/0"), 15, "Redis to start")
        accepted = wait_for(lambda: (r := client.post("/jobs", data=form())).status_code == 202 and r, 15,
                            "the API to reach Redis again")
        assert accepted.get_json()["status"] == "queued"
    finally:
        redis_server.terminate()
        redis_server.wait(10)


def publish_when_up(url: str) -> bool:
    try:
        publish(url, mnist_spec(1))
    except redis.ConnectionError:
        return False
    return True
