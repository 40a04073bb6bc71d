"""Where a queued job stands: lane counters kept by the job scripts, the drain rate, the estimate."""

import orjson
import pytest

from inferq import drain, keys
from inferq.broker import Envelope
from inferq.jobs import Finished, JobStore, Outcome
from inferq.priorities import BULK, INTERACTIVE

M = "mnist"


@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=600, depth_limits={INTERACTIVE: 100, BULK: 100})


def done(job_id: str, images: int, priority: str = BULK) -> Finished:
    return Finished(job_id, images, M, priority, None, Outcome.done({"model_version": 1, "outputs": {}}))


def test_each_job_keeps_the_images_admitted_before_it_in_its_lane(store, fake_redis):
    store.admit([("a", ["x"] * 3), ("b", ["x"] * 4)], model=M, priority=BULK, enqueue=Envelope("q", "m1"))
    store.admit([("c", ["x"] * 2)], model=M, priority=BULK)
    store.admit([("i", ["x"])], model=M, priority=INTERACTIVE)
    assert [store.get(job).lane_mark for job in "abc"] == [0, 3, 7]
    assert store.get("i").lane_mark == 0  # a lane of its own
    # A retried admission counts nothing again.
    store.admit([("c", ["x"] * 2)], model=M, priority=BULK)
    assert int(fake_redis.get(keys.lane_admitted(M, BULK))) == 9


def test_ended_jobs_count_as_drained_once_however_they_ended(store, fake_redis):
    store.admit([("a", ["x"] * 3), ("b", ["x"] * 4), ("c", ["x"] * 2)], model=M, priority=BULK)
    store.finish([done("a", 3)])
    store.finish([done("a", 3)])  # delivered twice
    assert int(fake_redis.get(keys.lane_finished(M, BULK))) == 3
    store.withdraw(["b"], model=M, priority=BULK)
    assert int(fake_redis.get(keys.lane_finished(M, BULK))) == 7
    assert store.take_back(Envelope("q", "m"), ["c"], model=M, priority=BULK) is False  # not queued: no-op
    fake_redis.lpush("q", "m")
    assert store.take_back(Envelope("q", "m"), ["c"], model=M, priority=BULK) is True
    assert int(fake_redis.get(keys.lane_finished(M, BULK))) == 9


def test_the_rate_is_measured_only_over_samples_that_saw_work_queued():
    # (time, finished, queued), newest first.
    assert drain.rate_from_samples([(10.0, 100, 0), (8.0, 60, 40), (6.0, 20, 80), (4.0, 20, 0)], 30) == 20.0
    assert drain.rate_from_samples([(10.0, 100, 5)], 30) is None  # one sample: no rate
    assert drain.rate_from_samples([(10.0, 100, 5), (9.0, 100, 5)], 30) is None  # nothing drained
    assert drain.rate_from_samples([(10.0, 100, 5), (9.0, 90, 0)], 30) is None  # idle before
    # The window bounds how far back it looks.
    assert drain.rate_from_samples([(100.0, 100, 5), (90.0, 50, 5), (10.0, 0, 5)], 30) == 5.0
    # Counters that went back (a Redis restored from an older file) stop the stretch.
    assert drain.rate_from_samples([(10.0, 10, 5), (9.0, 500, 5)], 30) is None


def test_the_meter_stores_a_rate_one_worker_at_a_time(fake_redis):
    meter = drain.DrainMeter(fake_redis, lambda: [M], worker="w1", interval_s=1)
    fake_redis.set(keys.queued_images(M, BULK), 50)
    fake_redis.set(keys.lane_finished(M, BULK), 0)
    assert meter.sample(M, 100.0) is None
    fake_redis.set(keys.lane_finished(M, BULK), 30)
    fake_redis.set(keys.lane_finished(M, INTERACTIVE), 10)
    assert meter.sample(M, 102.0) == 20.0
    assert drain.read_rate(fake_redis, M) == 20.0
    fake_redis.set(keys.DRAIN_TURN, "w2", px=1000)
    meter.maybe_sample()  # w2's turn: no sample
    assert fake_redis.llen(keys.drain_samples(M)) == 2


def test_a_queued_job_sees_the_images_ahead_and_when_it_should_start(store, fake_redis):
    store.admit([("a", ["x"] * 30), ("b", ["x"] * 20)], model=M, priority=BULK)
    store.admit([("i", ["x"] * 10)], model=M, priority=INTERACTIVE)
    unknown = drain.position(fake_redis, model=M, priority=BULK, lane_mark=store.get("b").lane_mark, now=1000.0)
    assert unknown == {"items_ahead": 30, "drain_rate": None, "estimated_start": None}
    fake_redis.set(keys.drain_rate(M), orjson.dumps({"images_per_s": 10.0, "measured_at": 999.0}))
    store.finish([done("a", 30)])
    # Nothing of its lane left ahead, but the interactive work queued now goes first.
    assert drain.position(fake_redis, model=M, priority=BULK, lane_mark=30, now=1000.0) == \
        {"items_ahead": 0, "drain_rate": 10.0, "estimated_start": 1001.0}
    assert drain.position(fake_redis, model=M, priority=INTERACTIVE, lane_mark=0, now=1000.0)["estimated_start"] \
        == 1000.0
    assert drain.position(fake_redis, model=M, priority=BULK, lane_mark=None, now=1000.0)["items_ahead"] is None


def test_retry_after_is_the_time_to_drain_the_excess_within_bounds():
    assert drain.retry_after_s(100, 10.0, 1) == 10
    assert drain.retry_after_s(101, 10.0, 1) == 11
    assert drain.retry_after_s(1, 1000.0, 1) == 1
    assert drain.retry_after_s(10**9, 1.0, 1) == drain.RETRY_AFTER_BOUNDS_S[1]
    assert drain.retry_after_s(100, None, 1) == 1  # no rate known yet


def test_the_meter_measures_each_published_tenants_rate_from_its_own_counters(fake_redis):
    fake_redis.hset(keys.TENANT_WEIGHTS, mapping={"a": 1, "b": 2})
    meter = drain.DrainMeter(fake_redis, lambda: [], worker="w1", interval_s=1)
    fake_redis.set(keys.tenant_queued("a"), 10)
    fake_redis.set(keys.tenant_finished("a"), 0)
    assert meter.sample_tenant("a", 100.0) is None
    fake_redis.set(keys.tenant_finished("a"), 30)
    assert meter.sample_tenant("a", 102.0) == 15.0
    assert drain.read_tenant_rate(fake_redis, "a") == 15.0
    assert drain.read_tenant_rate(fake_redis, "b") is None  # nothing drained, nothing measured
    meter.maybe_sample()
    assert fake_redis.llen(keys.tenant_drain_samples("b")) == 1
