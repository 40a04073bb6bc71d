"""The fleet's recount of the queued-items counters: one worker a turn, and only when it is due."""

from __future__ import annotations

import time

import pytest

from inferq import keys
from inferq.jobs import QUEUED_LIMIT, JobStore
from inferq.priorities import BULK, INTERACTIVE
from inferq.tenants import Tenant
from worker.counters import CounterRecount

M = "mnist"


@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=600, depth_limits={INTERACTIVE: 10, BULK: 20})


def drift(store: JobStore, fake_redis) -> None:
    """A lane that answers 503 for good: its one job's record deleted by hand, never to finish."""
    store.admit([("lost", ["x"] * 10)], model=M, priority=INTERACTIVE)
    fake_redis.delete(keys.job("lost"))
    assert store.admit([("refused", ["x"])], model=M, priority=INTERACTIVE) == [10]


def test_a_recount_gives_a_lane_back_the_room_a_job_that_never_ends_took(store, fake_redis):
    drift(store, fake_redis)
    CounterRecount(fake_redis, store, lambda: [M], worker="w1", interval_s=60).maybe_run()

    assert store.queued_images([M])[M][INTERACTIVE] == 0
    assert store.admit([("next", ["x"] * 10)], model=M, priority=INTERACTIVE) == [None]


def test_one_worker_of_the_fleet_recounts_an_interval(store, fake_redis):
    CounterRecount(fake_redis, store, lambda: [M], worker="w1", interval_s=60).maybe_run()
    drift(store, fake_redis)
    # Another worker within the first one's turn leaves the counters alone.
    CounterRecount(fake_redis, store, lambda: [M], worker="w2", interval_s=60).maybe_run()
    assert store.queued_images([M])[M][INTERACTIVE] == 10
    fake_redis.delete(keys.RECOUNT_TURN)
    CounterRecount(fake_redis, store, lambda: [M], worker="w2", interval_s=60).maybe_run()
    assert store.queued_images([M])[M][INTERACTIVE] == 0


def test_a_worker_recounts_again_only_once_its_interval_has_passed(store, fake_redis, monkeypatch):
    recount = CounterRecount(fake_redis, store, lambda: [M], worker="w1", interval_s=60)
    recount.maybe_run()
    fake_redis.delete(keys.RECOUNT_TURN)
    drift(store, fake_redis)
    recount.maybe_run()
    assert store.queued_images([M])[M][INTERACTIVE] == 10

    clock = time.monotonic() + 61
    monkeypatch.setattr("inferq.fleet_turns.time.monotonic", lambda: clock)
    recount.maybe_run()
    assert store.queued_images([M])[M][INTERACTIVE] == 0


def test_a_recount_gives_a_tenant_back_the_room_its_job_that_never_ends_took(store, fake_redis):
    vision = Tenant("vision", max_queued_items=10)
    store.publish_tenants([vision])  # as the API does with its tenants: who the recount looks at
    store.admit([("lost", ["x"] * 10)], model=M, priority=BULK, tenant=vision)
    fake_redis.delete(keys.job("lost"))
    assert store.admit([("refused", ["x"])], model=M, priority=BULK, tenant=vision)[0].limit == QUEUED_LIMIT
    CounterRecount(fake_redis, store, lambda: [M], worker="w1", interval_s=60).maybe_run()

    assert not fake_redis.exists(keys.tenant_queued("vision"))
    assert store.admit([("next", ["x"] * 10)], model=M, priority=BULK, tenant=vision) == [None]
