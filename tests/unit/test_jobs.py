import json

import pytest

from inferq import keys
from inferq.broker import Envelope, bell
from inferq.jobs import DONE, EXPIRED, FAILED, QUEUED, RUNNING, Finished, JobStore, Outcome
from inferq.priorities import BULK, INTERACTIVE

I = INTERACTIVE  # noqa: E741 -- the priority most tests use

RESULT = {"label": 3, "probabilities": [0.1] * 10, "model_version": 7}


@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=600, depth_limits={INTERACTIVE: 10, BULK: 20})


def test_a_job_goes_queued_running_done(store):
    assert store.admit([("j1", ["a.png", "b.png"])], priority=I) == [None]
    assert store.get("j1").status == QUEUED
    assert store.get("j1").filenames == ["a.png", "b.png"]
    assert store.queued_images()[I] == 2

    with store.running(["j1"]):
        pass
    assert store.get("j1").status == RUNNING

    store.finish([Finished("j1", 2, I, None, Outcome.done([RESULT, RESULT]))])
    record = store.get("j1")
    assert record.status == DONE
    assert record.outcome == Outcome.done([RESULT, RESULT])
    assert record.created_at <= record.started_at <= record.finished_at
    assert store.queued_images()[I] == 0


def test_admission_takes_the_jobs_that_fit_and_refuses_the_rest(store):
    assert store.admit([("j1", ["x"] * 6), ("j2", ["x"] * 5), ("j3", ["x"] * 4)], priority=I) == [None, 10, None]
    assert store.get("j2") is None
    assert store.queued_images()[I] == 10
    assert store.admit([("j4", ["x"])], priority=I) == [10]


def test_admission_pushes_the_message_when_every_job_fits(store, fake_redis):
    assert store.admit([("j1", ["x"] * 6), ("j2", ["x"] * 4)], priority=I,
                       enqueue=Envelope("q", "message")) == [None, None]
    assert fake_redis.lrange("q", 0, -1) == [b"message"]
    assert fake_redis.llen(bell("q")) == 1  # what an idle worker waits on
    assert store.get("j2").status == QUEUED


def test_admission_pushes_nothing_when_a_job_is_refused(store, fake_redis):
    assert store.admit([("j1", ["x"] * 6), ("j2", ["x"] * 5)], priority=I,
                       enqueue=Envelope("q", "message")) == [None, 6]
    assert fake_redis.llen("q") == 0 and fake_redis.llen(bell("q")) == 0
    assert store.get("j1").status == QUEUED
    assert store.queued_images()[I] == 6


def test_jobs_are_marked_running_even_after_redis_forgot_the_script(store, fake_redis):
    store.admit([("j1", ["x"])], priority=I)
    fake_redis.script_flush()
    with store.running(["j1"]):
        pass
    assert store.get("j1").status == RUNNING


def test_an_error_inside_the_running_block_propagates_and_the_store_still_works(store):
    store.admit([("j1", ["x"]), ("j2", ["y"])], priority=I)
    with pytest.raises(RuntimeError, match="the model failed"), store.running(["j1"]):
        raise RuntimeError("the model failed")
    with store.running(["j2"]):
        pass
    assert store.get("j2").status == RUNNING
    assert store.queued_images()[I] == 2


def test_the_first_outcome_is_final(store, fake_redis):
    store.admit([("j1", ["x"])], priority=I)
    store.finish([Finished("j1", 1, I, "api", Outcome.done([RESULT]))])
    # The same message delivered again, answered by a newer model, must not change the answer.
    with store.running(["j1"]):
        pass
    store.finish([Finished("j1", 1, I, "api", Outcome.failed("late"))])
    assert store.get("j1").status == DONE
    assert store.queued_images()[I] == 0
    assert fake_redis.llen(keys.replies("api")) == 1


def test_each_waiting_api_process_gets_its_jobs_outcomes_in_one_item(store):
    store.admit([("j1", ["x"]), ("j2", ["y"]), ("j3", ["z"]), ("j4", ["w"])], priority=I)
    store.finish([Finished("j1", 1, I, "api-a", Outcome.failed("model broke")),
                  Finished("j2", 1, I, None, Outcome.done([RESULT])),
                  Finished("j3", 1, I, "api-b", Outcome.done([RESULT])),
                  Finished("j4", 1, I, "api-a", Outcome.done([RESULT]))])
    assert store.replies("api-a", 1) == [("j1", Outcome.failed("model broke")), ("j4", Outcome.done([RESULT]))]
    assert store.replies("api-b", 1) == [("j3", Outcome.done([RESULT]))]
    assert store.get("j1").status == FAILED
    assert store.replies("api-a", 0.05) == []  # one item per batch, and it was taken


def test_jobs_and_reply_lists_expire(store, fake_redis):
    store.admit([("j1", ["x"])], priority=I)
    assert 0 < fake_redis.ttl(keys.job("j1")) <= 600
    store.finish([Finished("j1", 1, I, "api", Outcome.done([RESULT]))])
    assert 0 < fake_redis.ttl(keys.job("j1")) <= 600
    assert 0 < fake_redis.ttl(keys.replies("api")) <= 600


def test_withdrawn_jobs_leave_no_trace(store):
    store.admit([("j1", ["x", "y"])], priority=I)
    store.withdraw({"j1": 2}, priority=I)
    assert store.get("j1") is None
    assert store.queued_images()[I] == 0


def test_a_job_expired_while_queued_still_gets_its_answer(store, fake_redis):
    store.admit([("j1", ["x"])], priority=I)
    fake_redis.delete(keys.job("j1"))
    store.finish([Finished("j1", 1, I, "api", Outcome.done([RESULT]))])
    assert store.get("j1").status == DONE
    assert json.loads(fake_redis.lpop(keys.replies("api"))) == [["j1", {"results": [RESULT]}]]


def test_each_priority_has_its_own_limit_and_count(store):
    assert store.admit([("b1", ["x"] * 20)], priority=BULK) == [None]
    assert store.admit([("b2", ["x"])], priority=BULK) == [20]
    assert store.admit([("i1", ["x"] * 10)], priority=I) == [None]  # a full bulk queue refuses no interactive work
    assert store.queued_images() == {INTERACTIVE: 10, BULK: 20}
    assert store.get("b1").priority == BULK and store.get("i1").priority == INTERACTIVE
    store.finish([Finished("b1", 20, BULK, None, Outcome.done([RESULT] * 20)),
                  Finished("i1", 10, I, None, Outcome.done([RESULT] * 10))])
    assert store.queued_images() == {INTERACTIVE: 0, BULK: 0}


def test_an_expired_job_is_final_and_its_waiter_told(store):
    store.admit([("j1", ["x"])], priority=I)
    store.finish([Finished("j1", 1, I, "api", Outcome.expired("its deadline passed"))])
    record = store.get("j1")
    assert (record.status, record.outcome) == (EXPIRED, Outcome.expired("its deadline passed"))
    assert store.replies("api", 1) == [("j1", Outcome.expired("its deadline passed"))]
    store.finish([Finished("j1", 1, I, "api", Outcome.done([RESULT]))])  # delivered again: still expired
    assert store.get("j1").status == EXPIRED
    assert store.queued_images()[I] == 0


def test_a_message_pushed_after_admission_rings_its_bell(store, fake_redis):
    store.enqueue(Envelope("q", "late"))
    assert fake_redis.lrange("q", 0, -1) == [b"late"] and fake_redis.llen(bell("q")) == 1
