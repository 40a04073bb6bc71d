"""Tenants' quotas in the admission script on a real Redis: a tenant over its queued items or its
admission rate is refused, others are not; ending its jobs, however they end, gives it room back."""

from __future__ import annotations

import pytest
import redis

from inferq import keys
from inferq.jobs import QUEUED_LIMIT, RATE_LIMIT, Finished, JobStore, Outcome, TenantOverQuota
from inferq.priorities import BULK, INTERACTIVE
from inferq.settings import Settings
from inferq.tenants import Tenant

MODEL = "mnist"


@pytest.fixture
def store(redis_url):
    return JobStore(redis.Redis.from_url(redis_url), result_ttl_s=60, depth_limits=Settings().depth_limits)


def job(job_id: str, items: int) -> tuple[str, list[str]]:
    return job_id, [f"{job_id}-{i}" for i in range(items)]


def test_a_tenant_over_its_queued_items_is_refused_and_others_are_not(store):
    small = Tenant("small", max_queued_items=10)
    assert store.admit([job("a1", 6)], model=MODEL, priority=BULK, tenant=small) == [None]
    [refusal] = store.admit([job("a2", 5)], model=MODEL, priority=INTERACTIVE, tenant=small)
    assert isinstance(refusal, TenantOverQuota) and refusal.limit == QUEUED_LIMIT
    assert (refusal.queued, refusal.images, refusal.excess) == (6, 5, 1)
    assert store.get("a2") is None
    assert store.admit([job("b1", 500)], model=MODEL, priority=BULK, tenant=Tenant("big")) == [None]
    assert store.admit([job("a3", 4)], model=MODEL, priority=BULK, tenant=small) == [None]
    assert int(store.redis.get(keys.tenant_queued("small"))) == 10
    assert store.get("a1").tenant == "small" and store.get("b1").tenant == "big"


def test_ending_a_tenants_jobs_however_they_end_gives_its_room_back(store):
    small = Tenant("small", max_queued_items=4)
    for name in ("f", "c", "w"):
        assert store.admit([job(name, 1)], model=MODEL, priority=BULK, tenant=small) == [None]
    assert store.admit([job("x", 2)], model=MODEL, priority=BULK, tenant=small)[0].limit == QUEUED_LIMIT
    store.finish([Finished("f", 1, MODEL, BULK, None, Outcome.failed("no"))])
    store.finish([Finished("f", 1, MODEL, BULK, None, Outcome.failed("no"))])  # delivered twice: once
    store.cancel("c")
    store.withdraw(["w"], model=MODEL, priority=BULK)
    assert int(store.redis.get(keys.tenant_queued("small"))) == 0
    assert int(store.redis.get(keys.tenant_finished("small"))) == 3
    assert store.admit([job("x", 4)], model=MODEL, priority=BULK, tenant=small) == [None]


def test_a_tenant_over_its_rate_is_refused_until_its_bucket_refills(store):
    slow = Tenant("slow", max_items_per_s=0.5)  # a bucket of half an item: one item at a time, 2 s apart
    assert store.admit([job("r1", 1)], model=MODEL, priority=BULK, tenant=slow) == [None]
    [refusal] = store.admit([job("r2", 1)], model=MODEL, priority=BULK, tenant=slow)
    assert isinstance(refusal, TenantOverQuota) and refusal.limit == RATE_LIMIT
    assert 0 < refusal.excess <= 1  # what the bucket lacks: up to 2 s at half an item a second
    # Another tenant, and a retry of an admitted job, take nothing from the bucket.
    assert store.admit([job("o1", 50)], model=MODEL, priority=BULK, tenant=Tenant("other")) == [None]
    assert store.admit([job("r1", 1)], model=MODEL, priority=BULK, tenant=slow) == [None]
    tokens = float(store.redis.hget(keys.tenant_bucket("slow"), "tokens"))
    store.redis.hset(keys.tenant_bucket("slow"), "at", float(store.redis.hget(keys.tenant_bucket("slow"), "at")) - 10)
    assert tokens < 0.5
    assert store.admit([job("r2", 1)], model=MODEL, priority=BULK, tenant=slow) == [None]


def test_a_message_of_several_jobs_admits_those_that_fit_the_tenant_on_their_own(store):
    small = Tenant("small", max_queued_items=5)
    fits, refused = store.admit([job("m1", 3), job("m2", 3)], model=MODEL, priority=BULK, tenant=small)
    assert fits is None and isinstance(refused, TenantOverQuota)
    assert store.get("m1") is None  # all or nothing: the sender tries the one that fits again alone
    assert store.admit([job("m1", 3)], model=MODEL, priority=BULK, tenant=small) == [None]


def test_a_drifted_tenant_counter_is_recounted_from_its_unfinished_jobs_and_quotas_hold_to_it(store):
    small, big = Tenant("small", max_queued_items=10), Tenant("big", max_queued_items=100)
    store.redis.hset(keys.MODELS, "resnet", "[]")  # a model of another worker: the counter spans it
    assert store.admit([job("a1", 3)], model=MODEL, priority=BULK, tenant=small) == [None]
    assert store.admit([job("a2", 2)], model="resnet", priority=INTERACTIVE, tenant=small) == [None]
    assert store.admit([job("b1", 7)], model=MODEL, priority=BULK, tenant=big) == [None]
    store.start(["a1"])  # running: still counted, until it ends

    # Left high (a finish that never counted down): the tenant is refused room it has.
    store.redis.set(keys.tenant_queued("small"), 10)
    [refusal] = store.admit([job("a3", 1)], model=MODEL, priority=BULK, tenant=small)
    assert refusal.limit == QUEUED_LIMIT and refusal.queued == 10
    assert store.recount_tenants([MODEL]) == {"small": (10, 5)}
    assert int(store.redis.get(keys.tenant_queued("big"))) == 7  # right already: untouched
    assert store.admit([job("a3", 5)], model=MODEL, priority=BULK, tenant=small) == [None]
    assert store.admit([job("a4", 1)], model=MODEL, priority=BULK, tenant=small)[0].limit == QUEUED_LIMIT

    # Left low: the tenant would get past its limit.
    store.redis.set(keys.tenant_queued("small"), 0)
    assert store.recount_tenants([MODEL]) == {"small": (0, 10)}
    assert store.admit([job("a4", 1)], model=MODEL, priority=BULK, tenant=small)[0].limit == QUEUED_LIMIT
    assert store.recount_tenants([MODEL]) == {}  # nothing drifted: nothing written


def test_a_tenant_whose_jobs_were_lost_gets_its_room_back_by_the_lanes_and_tenants_recount(store):
    small = Tenant("small", max_queued_items=4)
    store.publish_tenants([small, Tenant("idle")])
    assert store.admit([job("lost", 4)], model=MODEL, priority=BULK, tenant=small) == [None]
    store.redis.delete(keys.job("lost"))  # its record gone by hand: it will never finish
    store.redis.set(keys.tenant_queued("idle"), 3)  # and a tenant with no work left counted
    assert store.admit([job("next", 1)], model=MODEL, priority=BULK, tenant=small)[0].limit == QUEUED_LIMIT
    assert store.reconcile([MODEL]) == {(MODEL, INTERACTIVE): 0, (MODEL, BULK): 1}
    assert store.recount_tenants([MODEL]) == {"small": (4, 0), "idle": (3, 0)}
    assert not store.redis.exists(keys.tenant_queued("idle"))
    assert store.admit([job("next", 4)], model=MODEL, priority=BULK, tenant=small) == [None]
