"""inferq across hosts: Redis, the API and two workers each on a host of its own (network namespaces on
one LAN), sharing only REDIS_URL and the model repository; the client on a fifth.

Requests are answered through the API host's address, and when a worker's host dies holding a
message, the other worker answers that message's jobs once it is delivered again.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from inferq import keys, messages
from inferq.jobs import DONE, FINAL
from inferq.priorities import PRIORITIES
from inferq.redis_connection import connect
from launcher import api_command
from tests.conftest import png_bytes
from tests.support.http_load import HttpLoad
from tests.support.models import build_model
from tests.support.netns import Lan, unusable_reason
from tests.support.processes import ApiProcess, WorkerProcess, worker_env
from tests.support.waiting import wait_for

LABEL = 5
REDIS_PORT, API_PORT = 6379, 8080
#: Seconds after which the message of a worker that died is delivered again.
VISIBILITY_TIMEOUT_S = 2


@pytest.fixture
def lan() -> Lan:
    reason = unusable_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("redis-server") is None:
        pytest.skip("needs the system's redis-server to run Redis on a host of its own")
    lan = Lan()
    try:
        yield lan
    finally:
        lan.delete()


def test_workers_on_other_hosts_answer_and_take_over_a_dead_hosts_message(lan, tmp_path):
    build_model(tmp_path / "models", 1, label=LABEL)
    redis_host = lan.add_host("redis")
    api_host = lan.add_host("api")
    for host in ("worker1", "worker2", "client"):
        lan.add_host(host)
    redis_url = f"redis://{redis_host}:{REDIS_PORT}/0"
    env = worker_env(redis_url, tmp_path / "models", "q", visibility_timeout_s=VISIBILITY_TIMEOUT_S)
    with lan.entered("client"):
        server = subprocess.Popen(lan.command("redis", [
            "redis-server", "--bind", redis_host, "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no",
            "--protected-mode", "no", "--dir", str(tmp_path)]), stdout=subprocess.DEVNULL)
        workers = {host: WorkerProcess(env, tmp_path / f"{host}.log", command=lan.command(host, [
            sys.executable, "-m", "celery", "-A", "worker.main", "worker", "--pool", "solo",
            "--hostname", f"{host}@%h", "--without-mingle", "--without-gossip", "--loglevel", "INFO"]))
            for host in ("worker1", "worker2")}
        api = ApiProcess(env, tmp_path / "api.log", API_PORT, host=api_host, command=lan.command("api", api_command()))
        try:
            for worker in workers.values():
                worker.wait_serving()
            store = connect(redis_url)
            with HttpLoad(api.base_url, png_bytes(np.full((28, 28), 90, np.uint8))) as load:
                wait_for(lambda: load.count("sync", 200) >= 20 and load.count("async", 202) >= 20, 30,
                         "requests answered through the API host")
                stranded = _catch_holding_a_message(store, workers["worker1"].process, workers["worker2"].process)
                lan.remove_host("worker1")
                workers["worker2"].process.send_signal(signal.SIGCONT)
                wait_for(lambda: all(status == DONE for status in _statuses(store, stranded)), 30,
                         "the other worker to answer the dead host's message")
                answered = load.count("sync", 200)
                wait_for(lambda: load.count("sync", 200) >= answered + 20, 30, "the remaining worker to serve")
            assert {answer.status for answer in load.answers} == {200, 202}
            assert {tuple(answer.body["labels"]) for answer in load.answers if answer.status == 200} == {(LABEL,)}
            accepted = load.accepted_job_ids()
            wait_for(lambda: all(status == DONE for status in _statuses(store, accepted)), 30,
                     f"all {len(accepted)} accepted jobs to finish")
            counters = [keys.queued_images("mnist", priority) for priority in PRIORITIES]
            wait_for(lambda: store.hlen("unacked") == 0 and all(int(count or 0) == 0 for count in store.mget(counters)),
                     10, "every message acknowledged and the queued-image counters back to zero")
        finally:
            for worker in workers.values():
                if worker.process.poll() is None:
                    worker.process.send_signal(signal.SIGCONT)
                    worker.stop()
            api.stop()
            server.terminate()
            server.wait(10)


def _catch_holding_a_message(store, worker, other) -> list[str]:
    """Stop both workers at a moment ``worker`` holds a message it took and has not answered; the
    ids of its unanswered jobs.

    ``other`` is stopped first, so a message taken after that is ``worker``'s; ``worker`` is then
    stopped as soon as one shows, and let go to try again if it had answered it already.
    """
    other.send_signal(signal.SIGSTOP)
    before = set(store.hkeys("unacked"))

    def caught() -> list[str] | None:
        taken = set(store.hkeys("unacked")) - before
        if not taken:
            return None
        worker.send_signal(signal.SIGSTOP)
        held = [job.job_id for record in store.hmget("unacked", list(taken)) if record is not None
                for job in _jobs(record)]
        unanswered = [job_id for job_id, status in zip(held, _statuses(store, held), strict=True)
                      if status not in FINAL]
        if not unanswered:
            worker.send_signal(signal.SIGCONT)
            return None
        return unanswered

    return wait_for(caught, 30, "worker1 to be caught holding a message", interval_s=0.005)


def _jobs(record: bytes) -> list[messages.JobInput]:
    message, _exchange, _routing_key = json.loads(record)
    args, _kwargs, _embed = json.loads(message["body"])
    model, jobs = messages.decode(args[0])
    assert model == "mnist"
    return jobs


def _statuses(store, job_ids: list[str]) -> list[str | None]:
    with store.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "status")
        return [status.decode() if status else None for status in pipe.execute()]
