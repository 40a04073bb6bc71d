import json

import pytest

from inferq import keys
from inferq.jobs import DONE, FAILED, QUEUED, RUNNING, Finished, JobStore, Outcome, QueueFull

RESULT = {"label": 3, "probabilities": [0.1] * 10, "model_version": 7}


@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=600, max_queue_depth=10)


def test_a_job_goes_queued_running_done(store):
    store.admit("j1", ["a.png", "b.png"])
    assert store.get("j1").status == QUEUED
    assert store.get("j1").filenames == ["a.png", "b.png"]
    assert store.queued_images() == 2

    store.start(["j1"])
    assert store.get("j1").status == RUNNING

    store.finish([Finished("j1", 2, False, Outcome.done([RESULT, RESULT]))])
    record = store.get("j1")
    assert record.status == DONE
    assert record.outcome == Outcome.done([RESULT, RESULT])
    assert record.created_at <= record.started_at <= record.finished_at
    assert store.queued_images() == 0


def test_admission_stops_at_the_queue_depth(store):
    store.admit("j1", ["x"] * 8)
    with pytest.raises(QueueFull) as caught:
        store.admit("j2", ["x"] * 3)
    assert caught.value.depth == 8
    assert store.get("j2") is None
    store.admit("j3", ["x"] * 2)
    assert store.queued_images() == 10


def test_the_first_outcome_is_final(store, fake_redis):
    store.admit("j1", ["x"])
    store.finish([Finished("j1", 1, True, Outcome.done([RESULT]))])
    # The same message delivered again, answered by a newer model, must not change the answer.
    store.start(["j1"])
    store.finish([Finished("j1", 1, True, Outcome.failed("late"))])
    assert store.get("j1").status == DONE
    assert store.queued_images() == 0
    assert fake_redis.llen(keys.job_reply("j1")) == 1


def test_a_waiting_request_gets_the_outcome_of_its_job(store):
    store.admit("j1", ["x"])
    store.admit("j2", ["y"])
    store.finish([Finished("j1", 1, True, Outcome.failed("model broke")),
                  Finished("j2", 1, False, Outcome.done([RESULT]))])
    assert store.wait("j1", 1) == Outcome.failed("model broke")
    assert store.get("j1").status == FAILED
    assert store.wait("j2", 0.1) is None  # nobody waits for it: no reply pushed


def test_waiting_times_out_without_an_outcome(store):
    store.admit("j1", ["x"])
    assert store.wait("j1", 0.05) is None


def test_jobs_and_replies_expire(store, fake_redis):
    store.admit("j1", ["x"])
    assert 0 < fake_redis.ttl(keys.job("j1")) <= 600
    store.finish([Finished("j1", 1, True, Outcome.done([RESULT]))])
    assert 0 < fake_redis.ttl(keys.job("j1")) <= 600
    assert 0 < fake_redis.ttl(keys.job_reply("j1")) <= 600


def test_withdrawn_jobs_leave_no_trace(store):
    store.admit("j1", ["x", "y"])
    store.withdraw({"j1": 2})
    assert store.get("j1") is None
    assert store.queued_images() == 0


def test_a_job_expired_while_queued_still_gets_its_answer(store, fake_redis):
    store.admit("j1", ["x"])
    fake_redis.delete(keys.job("j1"))
    store.finish([Finished("j1", 1, True, Outcome.done([RESULT]))])
    assert store.get("j1").status == DONE
    assert json.loads(fake_redis.lpop(keys.job_reply("j1"))) == {"results": [RESULT]}
