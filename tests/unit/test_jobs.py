import json

import pytest

from inferq import keys
from inferq.broker import Envelope
from inferq.jobs import DONE, FAILED, QUEUED, RUNNING, Finished, JobStore, Outcome

RESULT = {"label": 3, "probabilities": [0.1] * 10, "model_version": 7}


@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=600, max_queue_depth=10)


def test_a_job_goes_queued_running_done(store):
    assert store.admit([("j1", ["a.png", "b.png"])]) == [None]
    assert store.get("j1").status == QUEUED
    assert store.get("j1").filenames == ["a.png", "b.png"]
    assert store.queued_images() == 2

    with store.running(["j1"]):
        pass
    assert store.get("j1").status == RUNNING

    store.finish([Finished("j1", 2, None, Outcome.done([RESULT, RESULT]))])
    record = store.get("j1")
    assert record.status == DONE
    assert record.outcome == Outcome.done([RESULT, RESULT])
    assert record.created_at <= record.started_at <= record.finished_at
    assert store.queued_images() == 0


def test_admission_takes_the_jobs_that_fit_and_refuses_the_rest(store):
    assert store.admit([("j1", ["x"] * 6), ("j2", ["x"] * 5), ("j3", ["x"] * 4)]) == [None, 10, None]
    assert store.get("j2") is None
    assert store.queued_images() == 10
    assert store.admit([("j4", ["x"])]) == [10]


def test_admission_pushes_the_message_when_every_job_fits(store, fake_redis):
    assert store.admit([("j1", ["x"] * 6), ("j2", ["x"] * 4)], enqueue=Envelope("q", "message")) == [None, None]
    assert fake_redis.lrange("q", 0, -1) == [b"message"]
    assert store.get("j2").status == QUEUED


def test_admission_pushes_nothing_when_a_job_is_refused(store, fake_redis):
    assert store.admit([("j1", ["x"] * 6), ("j2", ["x"] * 5)], enqueue=Envelope("q", "message")) == [None, 6]
    assert fake_redis.llen("q") == 0
    assert store.get("j1").status == QUEUED
    assert store.queued_images() == 6


def test_jobs_are_marked_running_even_after_redis_forgot_the_script(store, fake_redis):
    store.admit([("j1", ["x"])])
    fake_redis.script_flush()
    with store.running(["j1"]):
        pass
    assert store.get("j1").status == RUNNING


def test_an_error_inside_the_running_block_propagates_and_the_store_still_works(store):
    store.admit([("j1", ["x"]), ("j2", ["y"])])
    with pytest.raises(RuntimeError, match="the model failed"), store.running(["j1"]):
        raise RuntimeError("the model failed")
    with store.running(["j2"]):
        pass
    assert store.get("j2").status == RUNNING
    assert store.queued_images() == 2


def test_the_first_outcome_is_final(store, fake_redis):
    store.admit([("j1", ["x"])])
    store.finish([Finished("j1", 1, "api", Outcome.done([RESULT]))])
    # The same message delivered again, answered by a newer model, must not change the answer.
    with store.running(["j1"]):
        pass
    store.finish([Finished("j1", 1, "api", Outcome.failed("late"))])
    assert store.get("j1").status == DONE
    assert store.queued_images() == 0
    assert fake_redis.llen(keys.replies("api")) == 1


def test_each_waiting_api_process_gets_its_jobs_outcomes_in_one_item(store):
    store.admit([("j1", ["x"]), ("j2", ["y"]), ("j3", ["z"]), ("j4", ["w"])])
    store.finish([Finished("j1", 1, "api-a", Outcome.failed("model broke")),
                  Finished("j2", 1, None, Outcome.done([RESULT])),
                  Finished("j3", 1, "api-b", Outcome.done([RESULT])),
                  Finished("j4", 1, "api-a", Outcome.done([RESULT]))])
    assert store.replies("api-a", 1) == [("j1", Outcome.failed("model broke")), ("j4", Outcome.done([RESULT]))]
    assert store.replies("api-b", 1) == [("j3", Outcome.done([RESULT]))]
    assert store.get("j1").status == FAILED
    assert store.replies("api-a", 0.05) == []  # one item per batch, and it was taken


def test_jobs_and_reply_lists_expire(store, fake_redis):
    store.admit([("j1", ["x"])])
    assert 0 < fake_redis.ttl(keys.job("j1")) <= 600
    store.finish([Finished("j1", 1, "api", Outcome.done([RESULT]))])
    assert 0 < fake_redis.ttl(keys.job("j1")) <= 600
    assert 0 < fake_redis.ttl(keys.replies("api")) <= 600


def test_withdrawn_jobs_leave_no_trace(store):
    store.admit([("j1", ["x", "y"])])
    store.withdraw({"j1": 2})
    assert store.get("j1") is None
    assert store.queued_images() == 0


def test_a_job_expired_while_queued_still_gets_its_answer(store, fake_redis):
    store.admit([("j1", ["x"])])
    fake_redis.delete(keys.job("j1"))
    store.finish([Finished("j1", 1, "api", Outcome.done([RESULT]))])
    assert store.get("j1").status == DONE
    assert json.loads(fake_redis.lpop(keys.replies("api"))) == [["j1", {"results": [RESULT]}]]
