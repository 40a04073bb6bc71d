"""Redis behind Sentinels: a primary, its replica and three Sentinels watching them.

When the primary is killed under load, what was answered stays answered: every job a client was
told was accepted (202) or answered (200) finishes with its right answer on the promoted replica.
Meanwhile requests are refused with 503 and Retry-After, never a 500, and the service comes back
without anyone restarting anything. A job is accepted only once the replica holds it.
"""

from __future__ import annotations

import io
import json
import signal
import time

import numpy as np

from api.app import create_app
from inferq import keys
from inferq.jobs import Outcome
from inferq.priorities import PRIORITIES
from inferq.redis_connection import connect
from inferq.settings import Settings
from launcher.processes import free_port
from tests.conftest import png_bytes
from tests.support.http_load import HttpLoad
from tests.support.models import build_model
from tests.support.processes import ApiProcess, WorkerProcess, worker_env
from tests.support.sentinel import MASTER, sentinel_group
from tests.support.specs import mnist_spec, publish
from tests.support.waiting import wait_for

#: The label the test's model gives every image, so that any answer can be checked.
LABEL = 7


def test_a_failover_under_load_loses_no_answered_job_and_refuses_meanwhile(tmp_path):
    build_model(tmp_path / "models", 1, label=LABEL)
    with sentinel_group(tmp_path) as group:
        # A replica that falls behind for longer is a 503 by design; the test is about the failover.
        env = worker_env(group.url, tmp_path / "models", "q", redis_sentinel_master=MASTER, visibility_timeout_s=3,
                         redis_replica_ack_timeout_ms=2000)
        worker = WorkerProcess(env, tmp_path / "worker.log")
        api = ApiProcess(env, tmp_path / "api.log", free_port())
        try:
            worker.wait_serving()
            with HttpLoad(api.base_url, png_bytes(np.full((28, 28), 200, np.uint8))) as load:
                wait_for(lambda: load.count("sync", 200) >= 20 and load.count("async", 202) >= 20, 30,
                         "requests to be answered before the failover")
                group.kill_primary()
                killed_at = time.monotonic()
                wait_for(lambda: group.master_port() == group.replica_port, 30, "the Sentinels to promote the replica")
                synced, accepted = load.count("sync", 200), load.count("async", 202)
                wait_for(lambda: load.count("sync", 200) >= synced + 20 and load.count("async", 202) >= accepted + 20,
                         30, "the service to answer again on its own")
            statuses = {answer.status for answer in load.answers}
            assert statuses <= {200, 202, 503}, f"{statuses}: see {tmp_path / 'api.log'}"
            refused = [answer for answer in load.answers if answer.status == 503]
            assert refused, "no request came while there was no master"
            assert all(answer.retry_after == "1" and answer.at >= killed_at for answer in refused)
            assert {tuple(answer.body["labels"]) for answer in load.answers if answer.status == 200} == {(LABEL,)}

            store = connect(group.url, sentinel_master=MASTER)
            accepted = load.accepted_job_ids()
            wait_for(lambda: all(status == b"done" for status, _ in _outcomes(store, accepted)), 30,
                     f"all {len(accepted)} accepted jobs to finish")
            labels = {label for _, outcome in _outcomes(store, accepted)
                      for label in Outcome.from_dict(json.loads(outcome)).answer["outputs"]["labels"]}
            assert labels == {LABEL}
            # Whatever was admitted, answered or not, ends: nothing is left counted as queued.
            counters = [keys.queued_images("mnist", priority) for priority in PRIORITIES]
            wait_for(lambda: all(int(count or 0) == 0 for count in store.mget(counters)),
                     30, "the queued-image counters to come back to zero")
        finally:
            api.stop()
            worker.stop()


def _outcomes(store, job_ids: list[str]) -> list[tuple[bytes | None, bytes | None]]:
    with store.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "status", "outcome")
        return pipe.execute()


def test_a_job_is_accepted_only_once_the_replica_holds_it(tmp_path):
    image = png_bytes(np.full((28, 28), 200, np.uint8))
    with sentinel_group(tmp_path) as group:
        # As a worker that ran before would have: the API admits work only for a model described.
        publish(group.url, mnist_spec(1), sentinel_master=MASTER)
        app = create_app(Settings(redis_url=group.url, queue_name="q", redis_replica_ack_timeout_ms=1000))
        client = app.test_client()
        replica = group.client(group.replica_port)

        accepted = client.post("/jobs", data={"image": [(io.BytesIO(image), "a.png")]})
        assert accepted.status_code == 202
        assert replica.hget(keys.job(accepted.get_json()["job_id"]), "status") == b"queued"

        group.processes["replica"].send_signal(signal.SIGSTOP)  # online to its master, acknowledging nothing
        try:
            refused = client.post("/jobs", data={"image": [(io.BytesIO(image), "b.png")]})
        finally:
            group.processes["replica"].send_signal(signal.SIGCONT)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert refused.get_json()["reason"] == "broker"
        assert client.post("/jobs", data={"image": [(io.BytesIO(image), "c.png")]}).status_code == 202
