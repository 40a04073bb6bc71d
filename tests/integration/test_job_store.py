"""The job store's overlapped write on a real Redis, where its reply really is read later."""

from __future__ import annotations

import pytest
import redis

from inferq.jobs import RUNNING, JobStore
from inferq.priorities import BULK, INTERACTIVE
from inferq.settings import Settings

MODEL = "mnist"


@pytest.fixture
def store(redis_url):
    return JobStore(redis.Redis.from_url(redis_url), result_ttl_s=60, depth_limits=Settings().depth_limits)


def test_running_marks_the_jobs_and_leaves_no_reply_behind(store):
    store.admit([("j1", ["x"]), ("j2", ["y"])], model=MODEL, priority=INTERACTIVE)
    with store.running(["j1"]):
        pass
    assert store.get("j1").status == RUNNING
    with pytest.raises(RuntimeError), store.running(["j2"]):
        raise RuntimeError("the model failed")
    # Every connection given back is clean: commands after both blocks get their own replies.
    assert [store.get(job).status for job in ("j1", "j2")] == [RUNNING, RUNNING]
    assert store.queued_images([MODEL]) == {MODEL: {INTERACTIVE: 2, BULK: 0}}


def test_running_after_redis_forgot_the_script(store, redis_url):
    store.admit([("j1", ["x"])], model=MODEL, priority=INTERACTIVE)
    redis.Redis.from_url(redis_url).script_flush()
    with store.running(["j1"]):
        pass
    assert store.get("j1").status == RUNNING


@pytest.mark.parametrize("replicas", [0, 1])
def test_admission_after_redis_forgot_the_script(redis_url, replicas):
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=60, depth_limits=Settings().depth_limits, replicas=replicas)
    client.script_flush()
    assert store.admit([("j1", ["x"])], model=MODEL, priority=INTERACTIVE) == [None]
    assert store.get("j1").status == "queued"


def test_with_no_replica_online_an_admission_waits_for_none(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=60, depth_limits=Settings().depth_limits, replicas=1,
                     replica_timeout_ms=60_000)
    waits = client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
    assert store.admit([("j1", ["x"])], model=MODEL, priority=INTERACTIVE) == [None]
    store.admit([("j2", ["x"])], model=MODEL, priority=INTERACTIVE)
    assert client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0) == waits
