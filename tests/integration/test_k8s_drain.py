"""Scaling workers in is safe: a worker stopped as Kubernetes stops a pod (SIGTERM) finishes the
batch it runs and gives back the messages it holds, within the pod's terminationGracePeriodSeconds,
while another worker carries on; and the worker probe (``python -m worker.liveness``) tells a
host with a live worker from one without."""

from __future__ import annotations

import io
import itertools
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import redis
import yaml

from api.app import create_app
from inferq import keys, priorities
from inferq.settings import Settings
from tests.conftest import REPO
from tests.support.models import busy_steps, busy_work, save_contract_model
from tests.support.specs import mnist_spec, publish
from tests.support.waiting import wait_for

WORKER_MANIFEST = REPO / "deploy" / "k8s" / "base" / "worker-mnist.yaml"
#: Seconds per batch the test model spends, so that a worker is caught holding work.
BATCH_SECONDS = 0.25
BATCH_IMAGES = 16
#: Far past the test's end: a message the stopped worker kept instead of giving back would
#: only come back after this, and the test would time out waiting for its job.
VISIBILITY_TIMEOUT_S = 3600

#: POST /jobs is bulk work for the default model: its queue, the Redis list KEDA would watch.
BULK_QUEUE = priorities.queue(Settings(queue_name="q").model_queue("mnist"), priorities.BULK)


def grace_period_s() -> int:
    deployment = next(doc for doc in yaml.safe_load_all(WORKER_MANIFEST.read_text()) if doc["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]


#: Which pixels each of the ten logits sums: every tenth one, from its own offset.
BANDS = (np.arange(784)[:, None] % 10 == np.arange(10)[None, :]).astype(np.float32)


def expected_labels(images: np.ndarray) -> np.ndarray:
    # Integer sums below 2**24 are exact in float32 in any order, and ``16 * sum + k`` never ties.
    logits = images.reshape(-1, 784).astype(np.int64) @ BANDS.astype(np.int64) * 16 + np.arange(10)
    return logits.argmax(axis=1)


def build_band_model(model_dir) -> None:
    """A model whose answer differs from image to image, computable here exactly, and slow."""
    import tensorflow as tf

    steps = busy_steps(BATCH_SECONDS)

    def logits_of(pixels):
        logits = tf.matmul(pixels, tf.constant(BANDS)) * 16.0 + tf.range(10, dtype=tf.float32)
        return logits + 0.0 * busy_work(steps)

    save_contract_model(model_dir, 1, logits_of)


class Jobs:
    """Posts bulk jobs of one to three real digits through the API app, remembering each."""

    def __init__(self, app, images: np.ndarray) -> None:
        self.client = app.test_client()
        self.images = images
        self.accepted: dict[str, list[int]] = {}
        self.refused: list[dict] = []
        self._next = itertools.count()
        self._lock = threading.Lock()

    def post(self) -> None:
        first = next(self._next) * 3 % (len(self.images) - 3)
        indexes = list(range(first, first + 1 + first % 3))
        buffer = io.BytesIO()
        np.save(buffer, self.images[indexes])
        response = self.client.post("/jobs", data={"images": [(io.BytesIO(buffer.getvalue()), "digits.npy")]})
        with self._lock:
            if response.status_code == 202:
                self.accepted[response.get_json()["job_id"]] = indexes
            else:
                self.refused.append(response.get_json())

    def ids(self) -> list[str]:
        with self._lock:
            return list(self.accepted)


def statuses(client: redis.Redis, job_ids: list[str]) -> list[bytes | None]:
    with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "status")
        return pipe.execute()


def liveness(redis_url: str) -> int:
    env = {"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "worker.liveness"], cwd=REPO, env=env, capture_output=True,
                          timeout=30).returncode


def test_a_worker_stopped_under_load_drains_and_every_job_is_answered(start_worker, redis_url, tmp_path,
                                                                        mnist_test):
    grace_s = grace_period_s()
    images = mnist_test[0][:900]
    settings = {"visibility_timeout_s": VISIBILITY_TIMEOUT_S, "max_batch_size": BATCH_IMAGES}
    app = create_app(Settings(redis_url=redis_url, queue_name="q", **settings))
    client = redis.Redis.from_url(redis_url)
    jobs = Jobs(app, images)

    # Both workers load TensorFlow, then wait for a model before they consume anything: meanwhile
    # a backlog forms, in the Redis list named after the queue, which KEDA would watch. The API
    # takes it because the catalog describes the model, as workers that ran before (scaled to zero
    # since) would have left it.
    publish(redis_url, mnist_spec(1))
    stopping = start_worker(tmp_path / "models", wait=False, **settings)
    staying = start_worker(tmp_path / "models", wait=False, **settings)
    for _ in range(150):
        jobs.post()
    assert client.type(BULK_QUEUE) == b"list" and client.llen(BULK_QUEUE) == 150
    build_band_model(tmp_path / "models")
    stopping.wait_serving()
    staying.wait_serving()
    assert liveness(redis_url) == 0

    stop_load = threading.Event()

    def load() -> None:
        while not stop_load.wait(0.02):  # about a hundred images a second
            jobs.post()

    poster = threading.Thread(target=load, daemon=True)
    poster.start()
    try:
        # Stop a worker that has been answering, while work is still queued behind it.
        wait_for(lambda: any(beat["images"] for beat in stopping.heartbeats()) and client.llen(BULK_QUEUE) > 0, 30,
                 "the worker to be busy with a backlog")
        stopping.process.send_signal(signal.SIGTERM)
        try:
            code = stopping.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker still ran {grace_s} s after SIGTERM, when Kubernetes would kill it")
        assert code == 0, stopping.log()

        done_by_staying = staying.heartbeats()[0]["images"]
        wait_for(lambda: staying.heartbeats()[0]["images"] > done_by_staying + 3 * BATCH_IMAGES, 30,
                 "the other worker to carry on")
    finally:
        stop_load.set()
        poster.join(30)

    assert not jobs.refused
    ids = jobs.ids()
    wait_for(lambda: all(status == b"done" for status in statuses(client, ids)), 60,
             f"all {len(ids)} jobs to finish")
    expected = expected_labels(images)
    answers = app.test_client()
    for job_id in ids:
        results = answers.get(f"/jobs/{job_id}").get_json()["result"]["results"]
        assert [r["labels"][0] for r in results] == [int(expected[i]) for i in jobs.accepted[job_id]], job_id
    assert client.hlen("unacked") == 0 and client.llen(BULK_QUEUE) == 0
    assert client.get(keys.queued_images("mnist", priorities.BULK)) == b"0"

    assert staying.stop() == 0
    assert liveness(redis_url) == 1
