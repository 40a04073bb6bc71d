import json
import uuid

import numpy as np
import orjson
import pytest
import redis

from inferq import keys
from inferq.broker import Envelope, backlog, bell, tenant_queue, tenant_ring
from inferq.jobs import DONE, EXPIRED, FAILED, QUEUED, RUNNING, Finished, JobStore, Outcome, QueueFull
from inferq.priorities import BULK, INTERACTIVE
from inferq.tenants import Tenant

I = INTERACTIVE  # noqa: E741 -- the priority most tests use

M = "mnist"


def answer(*labels: int) -> dict:
    """A model's answer for items of these labels, as a worker writes it (read back: lists)."""
    return {"model_version": 7, "outputs": {"labels": list(labels), "probabilities": [[0.1] * 10] * len(labels)}}



@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=600, depth_limits={INTERACTIVE: 10, BULK: 20})


def test_a_job_goes_queued_running_done(store):
    assert store.admit([("j1", ["a.png", "b.png"])], model=M, priority=I) == [None]
    assert store.get("j1").status == QUEUED
    assert store.get("j1").filenames == ["a.png", "b.png"]
    assert store.queued_images([M])[M][I] == 2

    store.start(["j1"])
    assert store.get("j1").status == RUNNING

    store.finish([Finished("j1", 2, M, I, None, Outcome.done(answer(3, 3)))])
    record = store.get("j1")
    assert record.status == DONE and record.model == M and record.priority == I
    assert record.outcome == Outcome.done(answer(3, 3))
    assert record.created_at <= record.started_at <= record.finished_at
    assert store.queued_images([M])[M][I] == 0


def test_admission_is_all_or_nothing_and_says_which_jobs_fit(store):
    assert store.admit([("j1", ["x"] * 6), ("j2", ["x"] * 5), ("j3", ["x"] * 4)], model=M, priority=I) == \
        [None, 10, None]
    assert [store.get(job) for job in ("j1", "j2", "j3")] == [None, None, None]
    assert store.queued_images([M])[M][I] == 0
    # The jobs that fit go in on their own.
    assert store.admit([("j1", ["x"] * 6), ("j3", ["x"] * 4)], model=M, priority=I) == [None, None]
    assert store.queued_images([M])[M][I] == 10
    assert store.admit([("j4", ["x"])], model=M, priority=I) == [10]


def test_admission_pushes_the_message_when_every_job_fits(store, fake_redis):
    assert store.admit([("j1", ["x"] * 6), ("j2", ["x"] * 4)], model=M, priority=I,
                       enqueue=Envelope("q", "message")) == [None, None]
    assert fake_redis.lrange("q", 0, -1) == [b"message"]
    assert fake_redis.llen(bell("q")) == 1  # what an idle worker waits on
    assert fake_redis.llen(backlog("q")) == 1  # what the autoscaler reads
    assert store.get("j2").status == QUEUED


def test_a_tenants_admitted_message_goes_on_its_list_and_the_queues_backlog(store, fake_redis):
    tenant = Tenant("vision")
    envelope = Envelope(tenant_queue("q", "vision"), "message", "q", "vision")
    assert store.admit([("j1", ["x"] * 2)], model=M, priority=I, enqueue=envelope, tenant=tenant) == [None]
    assert fake_redis.lrange(tenant_queue("q", "vision"), 0, -1) == [b"message"] and fake_redis.llen("q") == 0
    assert fake_redis.llen(bell("q")) == fake_redis.llen(backlog("q")) == 1
    assert fake_redis.lrange(tenant_ring("q"), 0, -1) == [b"vision"]


def test_admission_pushes_nothing_and_records_nothing_when_a_job_is_refused(store, fake_redis):
    assert store.admit([("j1", ["x"] * 6), ("j2", ["x"] * 5)], model=M, priority=I,
                       enqueue=Envelope("q", "message")) == [None, 6]
    assert fake_redis.llen("q") == 0 and fake_redis.llen(bell("q")) == 0 and fake_redis.llen(backlog("q")) == 0
    assert store.get("j1") is None
    assert store.queued_images([M])[M][I] == 0


def test_jobs_are_marked_running_even_after_redis_forgot_the_script(store, fake_redis):
    store.admit([("j1", ["x"])], model=M, priority=I)
    fake_redis.script_flush()
    store.start(["j1"])
    assert store.get("j1").status == RUNNING


def test_the_first_outcome_is_final(store, fake_redis):
    store.admit([("j1", ["x"])], model=M, priority=I)
    store.finish([Finished("j1", 1, M, I, "api", Outcome.done(answer(3)))])
    # The same message delivered again, answered by a newer model, must not change the answer.
    store.start(["j1"])
    store.finish([Finished("j1", 1, M, I, "api", Outcome.failed("late"))])
    assert store.get("j1").status == DONE
    assert store.queued_images([M])[M][I] == 0
    assert fake_redis.llen(keys.replies("api")) == 1


def test_each_waiting_api_process_gets_its_jobs_outcomes_in_one_item(store):
    store.admit([("j1", ["x"]), ("j2", ["y"]), ("j3", ["z"]), ("j4", ["w"])], model=M, priority=I)
    store.finish([Finished("j1", 1, M, I, "api-a", Outcome.failed("model broke")),
                  Finished("j2", 1, M, I, None, Outcome.done(answer(3))),
                  Finished("j3", 1, M, I, "api-b", Outcome.done(answer(3))),
                  Finished("j4", 1, M, I, "api-a", Outcome.done(answer(3)))])
    assert store.replies("api-a", 1) == [("j1", Outcome.failed("model broke")), ("j4", Outcome.done(answer(3)))]
    assert store.replies("api-b", 1) == [("j3", Outcome.done(answer(3)))]
    assert store.get("j1").status == FAILED
    assert store.replies("api-a", 0.05) == []  # one item per batch, and it was taken


def test_jobs_and_reply_lists_expire_once_finished(store, fake_redis):
    store.admit([("j1", ["x"])], model=M, priority=I)
    assert fake_redis.ttl(keys.job("j1")) == -1  # kept while queued, however long that is
    store.finish([Finished("j1", 1, M, I, "api", Outcome.done(answer(3)))])
    assert 0 < fake_redis.ttl(keys.job("j1")) <= 600
    assert 0 < fake_redis.ttl(keys.replies("api")) <= 600


def test_withdrawn_jobs_leave_no_trace(store):
    store.admit([("j1", ["x", "y"])], model=M, priority=I)
    store.withdraw({"j1": 2}, model=M, priority=I)
    assert store.get("j1") is None
    assert store.queued_images([M])[M][I] == 0


def test_a_job_expired_while_queued_still_gets_its_answer(store, fake_redis):
    store.admit([("j1", ["x"])], model=M, priority=I)
    fake_redis.delete(keys.job("j1"))
    store.finish([Finished("j1", 1, M, I, "api", Outcome.done(answer(3)))])
    assert store.get("j1").status == DONE
    assert json.loads(fake_redis.lpop(keys.replies("api"))) == [["j1", {"answer": answer(3)}]]


def test_each_priority_has_its_own_limit_and_count(store):
    assert store.admit([("b1", ["x"] * 20)], model=M, priority=BULK) == [None]
    assert store.admit([("b2", ["x"])], model=M, priority=BULK) == [20]
    # A full bulk queue refuses no interactive work.
    assert store.admit([("i1", ["x"] * 10)], model=M, priority=I) == [None]
    assert store.queued_images([M]) == {M: {INTERACTIVE: 10, BULK: 20}}
    assert store.get("b1").priority == BULK and store.get("i1").priority == INTERACTIVE
    store.finish([Finished("b1", 20, M, BULK, None, Outcome.done(answer(*[3] * 20))),
                  Finished("i1", 10, M, I, None, Outcome.done(answer(*[3] * 10)))])
    assert store.queued_images([M]) == {M: {INTERACTIVE: 0, BULK: 0}}


def test_an_expired_job_is_final_and_its_waiter_told(store):
    store.admit([("j1", ["x"])], model=M, priority=I)
    store.finish([Finished("j1", 1, M, I, "api", Outcome.expired("its deadline passed"))])
    record = store.get("j1")
    assert (record.status, record.outcome) == (EXPIRED, Outcome.expired("its deadline passed"))
    assert store.replies("api", 1) == [("j1", Outcome.expired("its deadline passed"))]
    store.finish([Finished("j1", 1, M, I, "api", Outcome.done(answer(3)))])  # delivered again: still expired
    assert store.get("j1").status == EXPIRED
    assert store.queued_images([M])[M][I] == 0


def test_a_message_pushed_after_admission_rings_its_bell(store, fake_redis):
    store.enqueue(Envelope("q", "late"))
    assert fake_redis.lrange("q", 0, -1) == [b"late"] and fake_redis.llen(bell("q")) == 1


def test_each_model_has_its_own_count_and_limit_per_priority(store, fake_redis):
    assert store.admit([("m1", ["x"] * 10)], model=M, priority=I) == [None]
    assert store.admit([("m2", ["x"])], model=M, priority=I) == [10]
    # A full queue of one model refuses no work of another.
    assert store.admit([("r1", ["x"] * 4)], model="resnet", priority=I) == [None]
    assert store.admit([("r2", ["x"] * 20)], model="resnet", priority=BULK) == [None]
    assert store.queued_images([M, "resnet", "absent"]) == {
        M: {INTERACTIVE: 10, BULK: 0}, "resnet": {INTERACTIVE: 4, BULK: 20}, "absent": {INTERACTIVE: 0, BULK: 0}}
    assert int(fake_redis.get(keys.queued_images("resnet", BULK))) == 20
    assert keys.queued_images("resnet", BULK) == "inferq:queued-images:resnet:bulk"
    assert store.get("r1").model == "resnet" and store.get("m1").model == M
    assert store.queued_images([]) == {}


def test_one_finish_of_several_models_and_priorities_counts_each_down(store):
    store.admit([("m1", ["x"] * 3)], model=M, priority=I)
    store.admit([("m2", ["x"] * 5)], model=M, priority=BULK)
    store.admit([("r1", ["x"] * 2), ("r2", ["x"])], model="resnet", priority=I)
    store.finish([Finished("r1", 2, "resnet", I, "api-a", Outcome.done(answer(1, 2))),
                  Finished("m2", 5, M, BULK, None, Outcome.failed("model broke")),
                  Finished("m1", 3, M, I, "api-a", Outcome.done(answer(1, 2, 3)))])
    assert store.queued_images([M, "resnet"]) == {M: {INTERACTIVE: 0, BULK: 0}, "resnet": {INTERACTIVE: 1, BULK: 0}}
    assert [job_id for job_id, _ in store.replies("api-a", 1)] == ["r1", "m1"]
    assert (store.get("m2").status, store.get("r2").status) == (FAILED, QUEUED)
    store.finish([Finished("r2", 1, "resnet", I, None, Outcome.expired("late"))])
    assert store.queued_images(["resnet"]) == {"resnet": {INTERACTIVE: 0, BULK: 0}}


def test_withdrawing_counts_down_its_own_model_only(store):
    store.admit([("m1", ["x"] * 2)], model=M, priority=I)
    store.admit([("r1", ["x"] * 3)], model="resnet", priority=I)
    store.withdraw({"r1": 3}, model="resnet", priority=I)
    assert store.get("r1") is None and store.get("m1").status == QUEUED
    assert store.queued_images([M, "resnet"]) == {M: {INTERACTIVE: 2, BULK: 0}, "resnet": {INTERACTIVE: 0, BULK: 0}}


def test_an_answer_of_arrays_is_read_back_as_lists():
    outcome = Outcome.done({"model_version": 2, "outputs": {
        "labels": np.array([3, 4], np.int64), "probabilities": np.array([[0.5, 0.25]], np.float32),
        "flags": np.array([True, False]), "text": ["caf\u00e9", {"b64": "/w=="}]}})
    assert Outcome.from_dict(json.loads(outcome.to_json())) == Outcome.done({"model_version": 2, "outputs": {
        "labels": [3, 4], "probabilities": [[0.5, 0.25]], "flags": [True, False],
        "text": ["caf\u00e9", {"b64": "/w=="}]}})


def test_a_finished_answer_of_arrays_is_stored_and_replied_as_lists(store):
    store.admit([("j1", ["x", "y"])], model=M, priority=I)
    store.finish([Finished("j1", 2, M, I, "api", Outcome.done(
        {"model_version": 7, "outputs": {"labels": np.array([3, 4], np.int64)}}))])
    expected = Outcome.done({"model_version": 7, "outputs": {"labels": [3, 4]}})
    assert store.get("j1").outcome == expected
    assert store.replies("api", 1) == [("j1", expected)]


def test_a_job_recorded_before_models_had_names_reads_as_of_no_model(store, fake_redis):
    fake_redis.hset(keys.job("old"), mapping={"status": QUEUED, "n": 1, "priority": I, "filenames": "[]"})
    assert store.get("old").model is None


def test_queue_full_names_the_priority_its_depth_and_the_model():
    full = QueueFull(BULK, 20, "resnet")
    assert (full.priority, full.depth, full.model) == (BULK, 20, "resnet")
    assert str(full) == "20 bulk items are queued for model 'resnet'"
    assert str(QueueFull(I, 5)) == "5 interactive items are queued"


def test_admitting_the_same_jobs_again_counts_and_queues_nothing_again(store, fake_redis):
    """A retried admission script (a timeout redis-py retries) finds its jobs recorded: a no-op."""
    def admit():
        return store.admit([("j1", ["x"] * 3), ("j2", ["x"] * 2)], model=M, priority=I,
                           enqueue=Envelope("q", "message"), stored_inputs={"j2": {"images": b"\x01" * 8}})

    assert admit() == [None, None]
    store.start(["j1"])
    assert admit() == [None, None]
    assert store.queued_images([M])[M][I] == 5
    assert fake_redis.lrange("q", 0, -1) == [b"message"] and fake_redis.llen(bell("q")) == 1
    assert store.get("j1").status == RUNNING  # not written again either
    store.finish([Finished("j1", 3, M, I, None, Outcome.done(answer(1, 2, 3))),
                  Finished("j2", 2, M, I, None, Outcome.done(answer(1, 2)))], stored=["j2"])
    assert admit() == [None, None]  # even once finished
    assert store.queued_images([M])[M][I] == 0 and fake_redis.llen("q") == 1
    assert store.get("j1").status == DONE and store.stored_inputs(["j2"]) == [{}]


def test_withdrawing_twice_counts_down_once(store):
    store.admit([("j1", ["x", "y"])], model=M, priority=I)
    store.admit([("j2", ["x"])], model=M, priority=I)
    store.withdraw(["j1"], model=M, priority=I)
    store.withdraw(["j1"], model=M, priority=I)
    assert store.queued_images([M])[M][I] == 1
    assert store.get("j1") is None and store.get("j2").status == QUEUED


def test_a_job_finished_twice_counts_down_once_even_if_its_record_was_lost(store, fake_redis):
    store.admit([("j1", ["x"]), ("j2", ["x"])], model=M, priority=I)
    fake_redis.delete(keys.job("j1"))
    for _ in range(2):
        store.finish([Finished("j1", 1, M, I, None, Outcome.done(answer(3)))])
    assert store.queued_images([M])[M][I] == 1
    assert 0 < fake_redis.ttl(keys.job("j1")) <= 600


def test_reconciling_brings_a_counter_that_drifted_back_to_the_jobs_still_unfinished(store, fake_redis):
    store.admit([("lost", ["x"] * 3)], model=M, priority=I)
    store.admit([("elsewhere", ["x"] * 2)], model=M, priority=I)
    store.admit([("live", ["x"] * 4)], model=M, priority=I)
    store.admit([("running", ["x"])], model=M, priority=I)
    store.admit([("bulk", ["x"] * 5)], model=M, priority=BULK)
    store.start(["running"])
    # Jobs that will never be finished here: one whose record is gone, one finished as of another
    # lane (its counter never counted it), and a counter pushed up by hand.
    fake_redis.delete(keys.job("lost"))
    store.finish([Finished("elsewhere", 2, "resnet", BULK, None, Outcome.failed("model broke"))])
    assert store.queued_images([M])[M] == {INTERACTIVE: 10, BULK: 5}
    fake_redis.incrby(keys.queued_images(M, BULK), 7)

    assert store.reconcile([M, "resnet"], chunk=1) == {(M, I): 2, (M, BULK): 0, ("resnet", I): 0, ("resnet", BULK): 0}
    assert store.queued_images([M])[M] == {INTERACTIVE: 5, BULK: 5}
    assert store.reconcile([M]) == {(M, I): 0, (M, BULK): 0}
    assert store.queued_images([M])[M] == {INTERACTIVE: 5, BULK: 5}
    # The live jobs are still counted, and count down when they finish.
    store.finish([Finished("live", 4, M, I, None, Outcome.done(answer(*[3] * 4))),
                  Finished("running", 1, M, I, None, Outcome.done(answer(3))),
                  Finished("bulk", 5, M, BULK, None, Outcome.done(answer(*[3] * 5)))])
    assert store.queued_images([M])[M] == {INTERACTIVE: 0, BULK: 0}
    assert store.admit([("next", ["x"] * 10)], model=M, priority=I) == [None]


def test_a_job_counts_down_what_its_admission_counted_whatever_its_finish_says(store):
    store.admit([("j1", ["x"] * 3)], model=M, priority=I)
    store.finish([Finished("j1", 1, M, I, None, Outcome.failed("its message said one item"))])
    assert store.queued_images([M])[M][I] == 0


def test_a_message_a_worker_claimed_is_not_taken_back(store, fake_redis):
    message = Envelope("q", "message")
    assert store.admit([("j1", ["a", "b"])], model=M, priority=INTERACTIVE, enqueue=message) == [None]
    fake_redis.rpop("q")  # a worker's claim

    assert not store.take_back(message, ["j1"], model=M, priority=INTERACTIVE)
    assert store.get("j1").status == QUEUED and store.queued_images([M])[M][INTERACTIVE] == 2


def test_a_message_still_queued_is_taken_back_with_its_jobs(store, fake_redis):
    message = Envelope("q", "message")
    store.admit([("j1", ["a", "b"])], model=M, priority=INTERACTIVE, enqueue=message)

    assert store.take_back(message, ["j1"], model=M, priority=INTERACTIVE)
    assert store.get("j1") is None and fake_redis.llen("q") == 0
    assert store.queued_images([M])[M][INTERACTIVE] == 0
    assert store.admit([("j2", ["a"] * 10)], model=M, priority=INTERACTIVE) == [None]


def test_each_change_of_a_job_is_published_once_and_progress_only_forward_while_it_runs(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=60, depth_limits={INTERACTIVE: 100, BULK: 100})
    job_id = f"progress-{uuid.uuid4()}"  # channels are the server's, not a database's: no other suite's
    channel = client.pubsub()
    channel.subscribe(keys.job_events(job_id))
    store.admit([(job_id, ["a", "b", "c", "d"])], model="m", priority=BULK)
    store.progress({job_id: 1})  # queued: not running yet, so no progress
    store.start([job_id])
    store.start([job_id])  # a message delivered again: no change, no news
    store.progress({job_id: 2})
    store.progress({job_id: 1})  # never backwards
    assert store.get(job_id).items_done == 2
    finished = Finished(job_id, 4, "m", BULK, None, Outcome.done(answer(1, 2, 3, 4)))
    store.finish([finished])
    store.finish([finished])  # the first outcome is final: nothing new to say
    store.progress({job_id: 3})  # ended: left as it is
    messages = [m for m in iter(lambda: channel.get_message(timeout=0.2), None) if m["type"] == "message"]
    said = [orjson.loads(m["data"]) for m in messages]
    assert said == [{"job_id": job_id, "status": RUNNING, "items": 4},
                    {"job_id": job_id, "status": RUNNING, "items": 4, "items_done": 2},
                    {"job_id": job_id, "status": DONE, "items": 4, "items_done": 2}]
    assert store.get(job_id).items_done == 2
