"""The job store's overlapped write on a real Redis, where its reply really is read later."""

from __future__ import annotations

import pytest
import redis

from inferq import keys
from inferq.jobs import DONE, RUNNING, Finished, JobStore, Outcome
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


def test_stored_inputs_are_written_with_the_jobs_admitted_only_and_deleted_when_they_finish(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=60, depth_limits={INTERACTIVE: 10, BULK: 3})
    pixels, more = bytes(range(256)) * 4, b"\x00\xff" * 8
    refusals = store.admit([("fits", ["a", "b"]), ("plain", ["c"]), ("too-many", ["d", "e"])], model=MODEL,
                           priority=BULK, stored_inputs={"fits": {"images": pixels, "mask": more},
                                                         "too-many": {"images": pixels}})
    assert refusals == [None, None, 3]
    assert store.stored_inputs(["fits", "plain", "too-many"]) == [{"images": pixels, "mask": more}, {}, {}]
    assert 0 < client.ttl(keys.job_inputs("fits")) <= 60

    store.finish([Finished("fits", 2, MODEL, BULK, None, Outcome.done({"outputs": {}}))], stored=["fits"])
    assert store.get("fits").status == DONE
    assert not client.exists(keys.job_inputs("fits"))


def test_withdrawn_jobs_leave_no_stored_inputs(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=60, depth_limits=Settings().depth_limits)
    store.admit([("j1", ["a"])], model=MODEL, priority=BULK, stored_inputs={"j1": {"x": b"123"}})
    store.withdraw({"j1": 1}, model=MODEL, priority=BULK)
    assert not client.exists(keys.job("j1"), keys.job_inputs("j1"))
