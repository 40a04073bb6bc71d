"""``python -m worker.liveness``, the worker pods' probe: this host's heartbeat, read from Redis."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from inferq import keys
from inferq.worker_registry import WorkerRegistry, WorkerStatus
from tests.conftest import REPO
from tests.support.specs import mnist_spec
from worker import liveness


def beat(client, name: str, interval_s: float = 2.0) -> None:
    hostname, _, pid = name.rpartition(":")
    WorkerRegistry(client, heartbeat_interval_s=interval_s).publish(WorkerStatus(
        name=name, hostname=hostname, pid=int(pid), started_at=time.time(), models=[mnist_spec(1)],
        batches=0, images=0, recent_batch_sizes=[], metrics=[]))


@pytest.fixture
def probe(monkeypatch, fake_redis):
    """``liveness.main`` against the fake Redis, as it would run on ``host``."""
    monkeypatch.setattr(liveness, "connect", lambda url, **_: fake_redis)
    return lambda hostname="inferq-worker-mnist-7d9f-abcde": liveness.main(hostname)


def test_a_live_heartbeat_from_this_host_passes(probe, fake_redis):
    beat(fake_redis, "inferq-worker-mnist-7d9f-abcde:1")
    assert probe() == liveness.LIVE


def test_no_heartbeat_fails(probe):
    assert probe() == liveness.MISSING


def test_another_hosts_heartbeat_does_not_count(probe, fake_redis):
    beat(fake_redis, "inferq-worker-mnist-7d9f-zzzzz:1")
    # A pod name that merely starts like this one's is another pod.
    beat(fake_redis, "inferq-worker-mnist-7d9f-abcde-2:1")
    assert probe() == liveness.MISSING


def test_an_expired_heartbeat_fails(probe, fake_redis):
    beat(fake_redis, "inferq-worker-mnist-7d9f-abcde:1")
    fake_redis.delete(keys.worker("inferq-worker-mnist-7d9f-abcde:1"))  # what its TTL does
    assert probe() == liveness.MISSING


def test_a_redis_that_does_not_answer_is_not_the_workers_fault(monkeypatch, unreachable_redis):
    monkeypatch.setattr(liveness, "connect", lambda url, **_: unreachable_redis)
    assert liveness.main("any-host") == liveness.LIVE


def test_the_probe_loads_neither_tensorflow_nor_celery():
    """An exec probe starts a fresh interpreter every period: it must stay light."""
    code = ("import sys, worker.liveness; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'celery', 'kombu'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
