"""The job store's cancel and idempotency-key scripts, on fakeredis: each step, and each step again."""

import uuid

import orjson
import pytest

from inferq import keys
from inferq.jobs import CANCELLED, DONE, QUEUED, RUNNING, Finished, JobStore, Outcome
from inferq.priorities import BULK, INTERACTIVE

M = "mnist"
ANSWER = {"model_version": 1, "outputs": {"labels": [3, 3]}}


@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=600, depth_limits={INTERACTIVE: 10, BULK: 20})


def counted(store: JobStore, fake_redis, job_id: str) -> tuple[int, bool]:
    return store.queued_images([M])[M][BULK], fake_redis.hexists(keys.unfinished(M, BULK), job_id)


def test_cancelling_a_queued_job_counts_it_down_at_once_and_once(store, fake_redis):
    store.admit([("j1", ["a", "b"]), ("j2", ["c"])], model=M, priority=BULK,
                stored_inputs={"j1": {"images": b"\x00" * 8}})
    assert store.cancel("j1") == QUEUED
    record = store.get("j1")
    assert record.status == CANCELLED and record.outcome.status == CANCELLED and record.finished_at
    assert counted(store, fake_redis, "j1") == (1, False)  # j2's image is left
    assert not fake_redis.exists(keys.job_inputs("j1"))
    assert 0 < fake_redis.ttl(keys.job("j1")) <= 600
    assert not fake_redis.exists(keys.replies(""))  # nobody waited: no reply pushed anywhere
    # Again: nothing more.
    assert store.cancel("j1") == CANCELLED
    assert counted(store, fake_redis, "j1") == (1, False)
    assert store.cancelled(["j1", "j2", "nope"]) == {"j1"}


def test_a_worker_finishing_a_cancelled_job_writes_nothing_over_it_and_counts_nothing(store, fake_redis):
    store.admit([("j1", ["a", "b"])], model=M, priority=BULK)
    store.start(["j1"])
    assert store.cancel("j1") == QUEUED or store.get("j1").status == CANCELLED
    assert store.get("j1").status == CANCELLED
    for _ in range(2):  # delivered twice
        store.finish([Finished("j1", 2, M, BULK, None, Outcome.done(ANSWER))])
        assert store.get("j1").status == CANCELLED and store.get("j1").outcome.answer is None
        assert counted(store, fake_redis, "j1") == (0, False)


def test_a_batchs_start_marks_its_queued_jobs_running_and_answers_the_cancelled_ones(store, fake_redis):
    store.admit([("queued", ["a"]), ("gone", ["b"]), ("again", ["c"]), ("ended", ["d"])], model=M, priority=BULK)
    store.cancel("gone")
    assert store.start(["again"]) == set()
    store.finish([Finished("ended", 1, M, BULK, None, Outcome.done(ANSWER))])
    with fake_redis.pubsub() as events:
        events.psubscribe(keys.job_events("*"))
        assert events.get_message(timeout=1)["type"] == "psubscribe"
        started = store.start(["queued", "gone", "again", "ended", "unknown"])
        announced = [orjson.loads(message["data"]) for message in iter(lambda: events.get_message(timeout=0.2), None)]
    assert started == {"gone"}
    assert [(record.status, record.started_at is not None) for record in map(store.get, ("queued", "again"))] == [
        (RUNNING, True), (RUNNING, True)]
    assert (store.get("gone").status, store.get("ended").status, store.get("unknown")) == (CANCELLED, DONE, None)
    assert [(event["job_id"], event["status"]) for event in announced] == [("queued", RUNNING)]
    assert store.start([]) == set()


def test_a_running_job_is_cancelled_and_a_final_one_is_not(store, fake_redis):
    store.admit([("run", ["a"]), ("end", ["b"])], model=M, priority=BULK)
    store.start(["run", "end"])
    assert store.get("run").status == RUNNING
    store.finish([Finished("end", 1, M, BULK, None, Outcome.done(ANSWER))])
    assert store.cancel("run") == RUNNING
    assert store.cancel("end") == DONE
    assert store.get("end").status == DONE
    assert store.cancel("never") is None
    assert store.queued_images([M])[M][BULK] == 0


def test_cancelling_answers_whoever_waits(store, fake_redis):
    store.admit([("j1", ["a"])], model=M, priority=INTERACTIVE, reply_to={"j1": "api-1"})
    assert fake_redis.hget(keys.job("j1"), "reply_to") == keys.replies("api-1").encode()
    store.cancel("j1")
    [(job_id, outcome)] = store.replies("api-1", 0.1)
    assert job_id == "j1" and outcome.status == CANCELLED and "cancelled" in outcome.error


def test_a_key_is_reserved_once_and_freed_when_its_job_is_not_admitted(store, fake_redis):
    key = keys.idempotency("k")
    held = store.reserve_key(key, "fp", "j1", pending_s=60)
    assert (held.state, held.job_id) == ("pending", "j1")
    assert 0 < fake_redis.pttl(key) <= 60_000
    other = store.reserve_key(key, "fp", "j2", pending_s=60)  # a second request meanwhile
    assert (other.state, other.job_id, other.fingerprint) == ("pending", "j1", "fp")
    assert store.settle_key(key, "j1", "fp") is False  # never admitted: freed
    assert not fake_redis.exists(key)
    assert store.reserve_key(key, "fp", "j3", pending_s=60).job_id == "j3"


def test_a_key_is_bound_to_its_admitted_job_and_expires_with_its_record(store, fake_redis):
    key = keys.idempotency("k")
    store.reserve_key(key, "fp", "j1", pending_s=60)
    store.admit([("j1", ["a"])], model=M, priority=BULK)
    for _ in range(2):  # settling again changes nothing
        assert store.settle_key(key, "j1", "fp") is True
        assert fake_redis.ttl(key) == -1  # lives while the job is unfinished
    held = store.reserve_key(key, "fp", "j2", pending_s=60)
    assert (held.state, held.job_id, held.bound) == ("bound", "j1", True)
    store.finish([Finished("j1", 1, M, BULK, None, Outcome.done(ANSWER))])
    assert 0 < fake_redis.ttl(key) <= 600
    assert orjson.loads(fake_redis.get(key))["job_id"] == "j1"


def test_a_key_bound_after_its_job_ended_takes_the_records_expiry(store, fake_redis):
    key = keys.idempotency("k")
    store.reserve_key(key, "fp", "j1", pending_s=60)
    store.admit([("j1", ["a"])], model=M, priority=BULK)
    store.cancel("j1")
    assert store.settle_key(key, "j1", "fp") is True
    assert 0 < fake_redis.ttl(key) <= 600


def test_a_key_whose_jobs_record_is_gone_is_free_again(store, fake_redis):
    key = keys.idempotency("k")
    store.reserve_key(key, "fp", "j1", pending_s=60)
    store.admit([("j1", ["a"])], model=M, priority=BULK)
    store.settle_key(key, "j1", "fp")
    fake_redis.delete(keys.job("j1"))
    assert store.reserve_key(key, "other", "j2", pending_s=60).job_id == "j2"
    assert store.settle_key(key, "j1", "fp") is False  # the old request's settle leaves j2's key alone
    assert orjson.loads(fake_redis.get(key))["job_id"] == "j2"


def test_a_cancel_is_published_once_on_the_jobs_channel(fake_redis, store):
    job_id = f"cancel-{uuid.uuid4()}"
    channel = fake_redis.pubsub()
    channel.subscribe(keys.job_events(job_id))
    store.admit([(job_id, ["a", "b"])], model=M, priority=BULK)
    store.cancel(job_id)
    store.cancel(job_id)  # cancelled already: nothing new to say
    store.finish([Finished(job_id, 2, M, BULK, None, Outcome.done(ANSWER))])  # its worker's late finish: nor this
    said = [orjson.loads(m["data"]) for m in iter(lambda: channel.get_message(timeout=0.2), None)
            if m["type"] == "message"]
    assert said == [{"job_id": job_id, "status": CANCELLED, "items": 2}]


def test_a_cancelled_job_counts_as_ended_in_its_lane_and_has_its_callback_queued(store, fake_redis):
    store.admit([("j1", ["a", "b"])], model=M, priority=BULK, callbacks={"j1": "https://hooks.example.com/x"})
    store.cancel("j1")
    store.cancel("j1")  # again: counted and queued once
    assert int(fake_redis.get(keys.lane_finished(M, BULK))) == 2
    assert fake_redis.zscore(keys.CALLBACKS_DUE, "j1") is not None
