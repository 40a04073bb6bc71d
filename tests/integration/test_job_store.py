"""The job store's overlapped write on a real Redis, where its reply really is read later."""

from __future__ import annotations

import pytest
import redis

from inferq import keys
from inferq.jobs import DONE, QUEUED, RUNNING, Finished, JobStore, Outcome
from inferq.priorities import BULK, INTERACTIVE
from inferq.settings import Settings
from tests.support.waiting import wait_for

MODEL = "mnist"


@pytest.fixture
def store(redis_url):
    return JobStore(redis.Redis.from_url(redis_url), result_ttl_s=60, depth_limits=Settings().depth_limits)


def test_start_marks_the_jobs_running(store):
    store.admit([("j1", ["x"]), ("j2", ["y"])], model=MODEL, priority=INTERACTIVE)
    assert store.start(["j1"]) == set()
    assert store.get("j1").status == RUNNING
    assert store.start(["j2", "j1"]) == set()  # one already running is left as it is
    assert [store.get(job).status for job in ("j1", "j2")] == [RUNNING, RUNNING]
    assert store.queued_images([MODEL]) == {MODEL: {INTERACTIVE: 2, BULK: 0}}


def test_start_after_redis_forgot_the_script(store, redis_url):
    store.admit([("j1", ["x"])], model=MODEL, priority=INTERACTIVE)
    redis.Redis.from_url(redis_url).script_flush()
    store.start(["j1"])
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
    assert store.stored_inputs(["fits", "plain", "too-many"]) == [{}, {}, {}]  # all or nothing
    assert store.admit([("fits", ["a", "b"]), ("plain", ["c"])], model=MODEL, priority=BULK,
                       stored_inputs={"fits": {"images": pixels, "mask": more}, "too-many": {"images": pixels}}) \
        == [None, None]
    assert store.stored_inputs(["fits", "plain", "too-many"]) == [{"images": pixels, "mask": more}, {}, {}]
    assert client.ttl(keys.job_inputs("fits")) == -1  # kept while the job waits

    store.finish([Finished("fits", 2, MODEL, BULK, None, Outcome.done({"outputs": {}}))], stored=["fits"])
    assert store.get("fits").status == DONE
    assert not client.exists(keys.job_inputs("fits"))


def test_withdrawn_jobs_leave_no_stored_inputs(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=60, depth_limits=Settings().depth_limits)
    store.admit([("j1", ["a"])], model=MODEL, priority=BULK, stored_inputs={"j1": {"x": b"123"}})
    store.withdraw({"j1": 1}, model=MODEL, priority=BULK)
    assert not client.exists(keys.job("j1"), keys.job_inputs("j1"))


def test_a_job_queued_longer_than_the_result_ttl_is_still_queued_and_then_answered(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=1, depth_limits=Settings().depth_limits)
    store.admit([("waits", ["a"]), ("canary", ["b"])], model=MODEL, priority=BULK,
                stored_inputs={"waits": {"images": b"\x07" * 64}})
    store.finish([Finished("canary", 1, MODEL, BULK, None, Outcome.done({"outputs": {}}))])
    # The canary's record expires RESULT_TTL after its outcome: by then the other job has waited
    # longer than RESULT_TTL.
    wait_for(lambda: store.get("canary") is None, 10, "the finished job's record to expire")
    assert store.get("waits").status == QUEUED
    assert store.stored_inputs(["waits"]) == [{"images": b"\x07" * 64}]
    store.start(["waits"])
    store.finish([Finished("waits", 1, MODEL, BULK, None, Outcome.done({"outputs": {"labels": [4]}}))],
                 stored=["waits"])
    assert store.get("waits").outcome == Outcome.done({"outputs": {"labels": [4]}})
    assert 0 < client.pttl(keys.job("waits")) <= 1000 and not client.exists(keys.job_inputs("waits"))
    assert store.queued_images([MODEL]) == {MODEL: {INTERACTIVE: 0, BULK: 0}}
