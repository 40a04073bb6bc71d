"""docker-compose.yml run for real: built, started, scaled, a worker and Redis killed, retrained.

One stack for the module, driven as a user would with the Compose found here (v2's `docker compose`
or Debian's docker-compose 1.29). The engine is installed and started where missing
(deploy/docker/engine.sh, as root); the images are built on an offline base of Debian packages, so
no registry is needed. Skipped, saying why, only where no engine can run; under CI it must run.
The steps share the stack, so they run in file order. Timings go to .run/compose/timings.txt.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from launcher.processes import free_port
from tests.conftest import MNIST_DIR, REPO
from tests.support.waiting import wait_for

ENGINE = REPO / "deploy" / "docker" / "engine.sh"
OVERRIDE = Path(__file__).with_name("ci-override.yml")
LOGS = REPO / ".run" / "compose"
BASE_IMAGE = os.environ.get("BASE_IMAGE", "inferq-base:bookworm")
PROJECT = "inferq-compose-test"
#: Long enough for a fresh build of both images on two cores (about 5 min measured) and a first training.
BUILD_TIMEOUT_S = 1800
READY_TIMEOUT_S = 600
JOB_TIMEOUT_S = 300
IN_CI = os.environ.get("CI") == "true"
TIMINGS: dict[str, float] = {}


def _engine_or_skip() -> bool:
    """Starts the engine where it is missing; True when this test started dockerd."""
    def unavailable(reason: str) -> None:
        if IN_CI:
            pytest.fail(f"CI must run the compose test: {reason}")
        pytest.skip(reason)

    if not sys.platform.startswith("linux"):
        unavailable("the compose test starts a Docker engine: Linux only")
    answers = shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    if not answers and os.geteuid() != 0:
        unavailable("no Docker engine answers, and only root may install and start one")
    if not answers and not shutil.which("dockerd") and not shutil.which("apt-get"):
        unavailable("no Docker engine, and no apt-get to install Debian's docker.io")
    started = subprocess.run([str(ENGINE), "start"], capture_output=True, text=True)
    if started.returncode != 0:
        unavailable(f"the Docker engine did not start: {started.stderr.strip()[-500:]}")
    return "dockerd started" in started.stdout


def _compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"]


class Stack:
    def __init__(self, port: int, grpc_port: int) -> None:
        self.port = port
        self.grpc_port = grpc_port
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = dict(
            os.environ, COMPOSE_PROJECT_NAME=PROJECT, PORT=str(port), GRPC_PORT=str(grpc_port),
            PYTHON_IMAGE=BASE_IMAGE, REDIS_IMAGE=BASE_IMAGE, MNIST_DATA=str(MNIST_DIR.resolve()),
            # A killed worker's batch comes back after this; the default (60 s) would only slow the test.
            VISIBILITY_TIMEOUT_S="10", COMPOSE_HTTP_TIMEOUT="300",
        )
        self.compose = [*_compose_command(), "-f", str(REPO / "docker-compose.yml"), "-f", str(OVERRIDE)]

    def run(self, *args: str, timeout: float = 300, log: str | None = None) -> str:
        out = open(LOGS / log, "a") if log else None  # noqa: SIM115
        try:
            result = subprocess.run([*self.compose, *args], cwd=REPO, env=self.env, timeout=timeout, text=True,
                                    stdout=out or subprocess.PIPE, stderr=subprocess.STDOUT)
        finally:
            if out:
                out.close()
        if result.returncode != 0:
            tail = (LOGS / log).read_text()[-3000:] if log else result.stdout[-3000:]
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{tail}")
        return result.stdout or ""

    def containers(self, service: str) -> list[str]:
        return self.run("ps", "-q", service).split()

    def redis_cli(self, *args: str) -> str:
        return self.run("exec", "-T", "redis", "redis-cli", *args).strip()

    def http(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
        request = urllib.request.Request(self.base_url + path, data=body, method=method,
                                         headers={"Content-Type": content_type} if content_type else {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            return None, {"error": str(error)}

    def upload(self, path: str, field: str, filename: str, payload: bytes):
        boundary = uuid.uuid4().hex
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")
        body = head.encode() + payload + f"\r\n--{boundary}--\r\n".encode()
        return self.http("POST", path, body, f"multipart/form-data; boundary={boundary}")

    def status(self) -> dict:
        code, body = self.http("GET", "/status")
        return body if code == 200 else {}

    def submit(self, images: np.ndarray) -> str:
        buffer = io.BytesIO()
        np.save(buffer, images)
        code, body = self.upload("/jobs", "images", "batch.npy", buffer.getvalue())
        assert code == 202, (code, body)
        return body["job_id"]

    def finished(self, job_id: str, timeout_s: float = JOB_TIMEOUT_S) -> dict:
        def done():
            code, body = self.http("GET", f"/jobs/{job_id}")
            return body if code == 200 and body.get("status") in ("done", "failed", "expired") else None
        return wait_for(done, timeout_s, f"job {job_id} to finish", interval_s=0.5)

    def ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        wait_for(lambda: self.http("GET", "/readyz")[0] == 200, timeout_s, "the API's /readyz", interval_s=1)


def _timed(name: str, start: float) -> None:
    TIMINGS[name] = round(time.monotonic() - start, 1)


@pytest.fixture(scope="module")
def stack():
    started_dockerd = _engine_or_skip()
    LOGS.mkdir(parents=True, exist_ok=True)
    for log in LOGS.glob("*.log"):
        log.unlink()
    stack = Stack(free_port(), free_port())
    stack.run("down", "-v", "--remove-orphans", timeout=300)  # what an interrupted run left
    try:
        start = time.monotonic()
        subprocess.run([str(ENGINE), "base"], check=True, timeout=BUILD_TIMEOUT_S, env=stack.env,
                       stdout=subprocess.DEVNULL)
        _timed("base image", start)
        start = time.monotonic()
        stack.run("build", "api", "worker", timeout=BUILD_TIMEOUT_S, log="build.log")
        _timed("build api and worker images", start)
        start = time.monotonic()
        stack.run("up", "-d", timeout=BUILD_TIMEOUT_S, log="up.log")
        stack.ready()
        _timed("up to ready (trains the first model)", start)
        yield stack
    finally:
        logs = subprocess.run([*stack.compose, "logs", "--no-color"], cwd=REPO, env=stack.env, capture_output=True,
                              text=True, timeout=120)
        (LOGS / "services.log").write_text(logs.stdout + logs.stderr)
        start = time.monotonic()
        stack.run("down", "-v", "--remove-orphans", timeout=300)
        _timed("down -v", start)
        (LOGS / "timings.txt").write_text("".join(f"{name}: {seconds} s\n" for name, seconds in TIMINGS.items()))
        if started_dockerd:
            subprocess.run([str(ENGINE), "stop"], timeout=120)


def _png_104(mnist_test) -> bytes:
    from tests.conftest import png_bytes

    return png_bytes(mnist_test[0][104])


def test_the_seeds_curl_answers_nine(stack, mnist_test, tmp_path):
    png = tmp_path / "104.png"
    png.write_bytes(_png_104(mnist_test))
    answer = subprocess.run(["curl", "-sS", "--max-time", "60", f"localhost:{stack.port}/recognize",
                             "-F", f"image=@{png}"], capture_output=True, text=True, timeout=90)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["labels"] == [9], answer.stdout


def test_the_grpc_service_is_healthy_and_answers_nine(stack, mnist_test):
    """The compose file's gRPC front end: grpc.health.v1 SERVING, then tritonclient.grpc's answer."""
    import grpc
    import tritonclient.grpc as triton_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    def serving() -> bool:
        with grpc.insecure_channel(f"127.0.0.1:{stack.grpc_port}") as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"), timeout=3)
            except grpc.RpcError:
                return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING

    wait_for(serving, READY_TIMEOUT_S, "the gRPC front end to serve", interval_s=1)
    pixels = triton_grpc.InferInput("inputdata", [1, 784], "FP32")
    pixels.set_data_from_numpy(mnist_test[0][104].reshape(1, 784).astype(np.float32))
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{stack.grpc_port}")
    try:
        assert client.infer("mnist", [pixels], client_timeout=60).as_numpy("labels").tolist() == [9]
    finally:
        client.close()


def _check_job(stack: Stack, job_id: str, labels: np.ndarray) -> None:
    job = stack.finished(job_id)
    assert job["status"] == "done", job
    results = job["result"]["results"]
    assert len(results) == len(labels), (len(results), len(labels))
    assert [item["filename"] for item in results] == [f"batch.npy#{index}" for index in range(len(labels))]
    predicted = np.array([item["labels"][0] for item in results])
    # The trained MLP reaches about 98 % on the test split: a shuffled or mangled answer cannot.
    assert (predicted == labels).mean() > 0.95, (predicted == labels).mean()


def test_a_job_of_a_thousand_test_images_is_done_right(stack, mnist_test):
    images, labels = mnist_test
    _check_job(stack, stack.submit(images[:1000]), labels[:1000])


def _heartbeat_batches(stack: Stack) -> dict[str, int]:
    """Each live worker's batch count, from the heartbeats in Redis."""
    names = stack.redis_cli("--raw", "ZRANGE", "inferq:workers", "0", "-1").split()
    counts = {}
    for name in names:
        record = stack.redis_cli("--raw", "GET", f"inferq:worker:{name}")
        if record:
            counts[name] = json.loads(record)["batches"]
    return counts


def _backlog(stack: Stack, mnist_test, jobs: int) -> list[tuple[str, np.ndarray]]:
    images, labels = mnist_test
    return [(stack.submit(images[start:start + 1000]), labels[start:start + 1000])
            for start in (1000 * (n % 10) for n in range(jobs))]


def test_three_workers_each_take_batches(stack, mnist_test):
    start = time.monotonic()
    stack.run("up", "-d", "--no-recreate", "--scale", "worker=3", "worker", timeout=600, log="scale.log")
    wait_for(lambda: len(_heartbeat_batches(stack)) == 3, READY_TIMEOUT_S, "three worker heartbeats", interval_s=1)
    _timed("scale to 3 workers", start)
    before = _heartbeat_batches(stack)
    for job_id, labels in _backlog(stack, mnist_test, 12):
        _check_job(stack, job_id, labels)
    after = wait_for(lambda: (counts := _heartbeat_batches(stack)) and all(
        counts.get(name, 0) > batches for name, batches in before.items()) and counts, 30,
        "every worker's heartbeat to count new batches", interval_s=1)
    assert set(after) == set(before), (before, after)


def test_a_worker_killed_mid_backlog_loses_nothing(stack, mnist_test):
    # Queued with the workers stopped, so that the backlog is still there when one of them is killed:
    # 90,000 images, near the bulk lane's 100,000, as three workers drained 40,000 before a kill
    # landed once their batches got faster.
    stack.run("stop", "worker", timeout=300)
    jobs = _backlog(stack, mnist_test, 90)
    stack.run("start", "worker", timeout=300)
    victim = stack.containers("worker")[0]
    queued = len(jobs) * 1000
    # /status is cheap to poll: reading the jobs themselves would take longer than the backlog lasts.
    wait_for(lambda: 0 < stack.status().get("queued_images", queued) < queued, JOB_TIMEOUT_S,
             "the workers to start on the backlog", interval_s=0.05)
    assert subprocess.run(["docker", "kill", "-s", "KILL", victim], capture_output=True).returncode == 0
    assert stack.status()["queued_images"] > 0, "the backlog ended before the kill: it proves nothing"
    for job_id, labels in jobs:
        _check_job(stack, job_id, labels)


def test_redis_restarted_with_jobs_queued_loses_nothing(stack, mnist_test):
    stack.run("stop", "worker", timeout=300)  # so that the jobs are still queued when Redis goes
    jobs = _backlog(stack, mnist_test, 5)
    # The append-only file is in the volume (a restart keeps the container's own files too).
    assert stack.redis_cli("--raw", "CONFIG", "GET", "dir").split() == ["dir", "/data"]
    assert "appendonly" in stack.run("exec", "-T", "redis", "ls", "/data")
    stack.run("restart", "redis", timeout=300)
    wait_for(lambda: stack.http("GET", "/status")[0] == 200, 120, "the API to reach Redis again", interval_s=0.5)
    for job_id, _ in jobs:
        assert stack.http("GET", f"/jobs/{job_id}")[1].get("status") == "queued", job_id
    stack.run("up", "-d", "--no-recreate", "--scale", "worker=1", "worker", timeout=600, log="scale.log")
    for job_id, labels in jobs:
        _check_job(stack, job_id, labels)


def test_a_new_version_is_served_without_restarting_the_workers(stack, mnist_test):
    workers = {container: _started_at(container) for container in stack.containers("worker")}
    start = time.monotonic()
    stack.run("run", "--rm", "trainer", "python", "-m", "trainer", "--params", "config/model.json", "--epochs", "1",
              timeout=900, log="trainer.log")
    _timed("trainer run for version 2 (1 epoch)", start)
    wait_for(lambda: 2 in stack.status().get("model_versions", []), 120, "the workers to serve version 2",
             interval_s=0.5)
    code, answer = stack.upload("/recognize", "image", "104.png", _png_104(mnist_test))
    assert code == 200 and answer["labels"] == [9] and answer["model_version"] == 2, answer
    assert {container: _started_at(container) for container in stack.containers("worker")} == workers


def _started_at(container: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", container], capture_output=True,
                          text=True, check=True).stdout.strip()
