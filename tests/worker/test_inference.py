import time

import numpy as np
import pytest
import redis

from inferq import messages
from inferq.jobs import DONE, EXPIRED, FAILED, JobStore
from inferq.priorities import BULK, INTERACTIVE
from inferq.settings import Settings
from worker.inference import run_batch
from worker.metrics import WorkerMetrics


class FakeModel:
    """Labels each image by its first pixel mod 10, like a model would: one call for the batch."""

    version = 7

    def __init__(self, fail: bool = False, probabilities: bool = True) -> None:
        self.calls: list[int] = []
        self.fail = fail
        self.probabilities = probabilities

    def predict(self, pixels: np.ndarray):
        self.calls.append(len(pixels))
        if self.fail:
            raise RuntimeError("out of memory")
        labels = pixels[:, 0].astype(np.int64) % 10
        probabilities = np.eye(10, dtype=np.float32)[labels] if self.probabilities else None
        return labels, probabilities


def job(job_id: str, firsts: list[int], reply_to: str | None = None, priority: str = INTERACTIVE,
        deadline: float | None = None) -> messages.JobInput:
    pixels = np.zeros((len(firsts), 784), np.uint8)
    pixels[:, 0] = firsts
    return messages.JobInput(job_id, pixels.tobytes(), reply_to, priority, deadline, time.time() - 0.25)


@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=60, depth_limits=Settings().depth_limits)


def admit(store, *jobs):
    for one in jobs:
        assert store.admit([(one.job_id, ["f"] * one.count)], priority=one.priority) == [None]


def test_the_jobs_of_all_messages_go_through_one_model_call(store):
    jobs = [job("a", [3]), job("b", [14, 25], reply_to="api-1"), job("c", [6])]
    admit(store, *jobs)
    model, metrics = FakeModel(), WorkerMetrics()
    run_batch([messages.encode(jobs[:2]), messages.encode(jobs[2:])], model, store, metrics)

    assert model.calls == [4]
    assert [r["label"] for r in store.get("b").outcome.results] == [4, 5]
    assert store.get("a").outcome.results == [
        {"label": 3, "probabilities": [0, 0, 0, 1, 0, 0, 0, 0, 0, 0], "model_version": 7}]
    assert [(job_id, outcome.status) for job_id, outcome in store.replies("api-1", 0.1)] == [("b", DONE)]
    assert store.queued_images() == {"interactive": 0, "bulk": 0}
    assert (metrics.batches, metrics.images) == (1, 4)
    assert metrics.registry.get_sample_value("inferq_worker_messages_total") == 2


def test_a_model_without_probabilities_answers_labels(store):
    admit(store, job("a", [9]))
    run_batch([messages.encode([job("a", [9])])], FakeModel(probabilities=False), store, WorkerMetrics())
    assert store.get("a").outcome.results == [{"label": 9, "probabilities": None, "model_version": 7}]


def test_a_failed_model_call_fails_every_job_of_the_batch_with_the_reason(store):
    jobs = [job("a", [1]), job("b", [2], reply_to="api-1")]
    admit(store, *jobs)
    metrics = WorkerMetrics()
    run_batch([messages.encode(jobs)], FakeModel(fail=True), store, metrics)
    for job_id in "ab":
        record = store.get(job_id)
        assert record.status == FAILED
        assert "model version 7 failed" in record.outcome.error and "out of memory" in record.outcome.error
    assert [(job_id, outcome.status) for job_id, outcome in store.replies("api-1", 0.1)] == [("b", FAILED)]
    assert metrics.registry.get_sample_value("inferq_worker_failed_jobs_total") == 2
    assert store.queued_images() == {"interactive": 0, "bulk": 0}


def test_a_message_that_is_not_ours_is_dropped_and_the_others_answered(store):
    admit(store, job("a", [1]))
    run_batch([{"something": "else"}, messages.encode([job("a", [1])])], FakeModel(), store, WorkerMetrics())
    assert store.get("a").status == DONE


def test_redis_out_of_reach_propagates_so_the_batch_is_delivered_again(unreachable_redis):
    store = JobStore(unreachable_redis, result_ttl_s=60, depth_limits=Settings().depth_limits)
    with pytest.raises(redis.ConnectionError):
        run_batch([messages.encode([job("a", [1])])], FakeModel(), store, WorkerMetrics())


def test_jobs_past_their_deadline_end_expired_unrun_and_the_others_are_answered(store):
    late = job("late", [1], reply_to="api-1", deadline=time.time() - 1)
    on_time = job("on-time", [2], priority=BULK, deadline=time.time() + 60)
    admit(store, late, on_time)
    model, metrics = FakeModel(), WorkerMetrics("mnist")
    run_batch([messages.encode([late, on_time])], model, store, metrics)

    assert model.calls == [1]  # the expired job's image never reached the model
    record = store.get("late")
    assert record.status == EXPIRED and "deadline passed" in record.outcome.error and record.started_at is None
    assert [(job_id, outcome.status) for job_id, outcome in store.replies("api-1", 0.1)] == [("late", EXPIRED)]
    assert store.get("on-time").status == DONE
    assert store.queued_images() == {"interactive": 0, "bulk": 0}
    expired = metrics.registry.get_sample_value
    assert expired("inferq_worker_expired_jobs_total", {"model": "mnist", "priority": "interactive"}) == 1
    assert expired("inferq_worker_expired_jobs_total", {"model": "mnist", "priority": "bulk"}) is None


def test_a_batch_of_expired_jobs_calls_no_model(store):
    late = job("late", [1], deadline=time.time() - 1)
    admit(store, late)
    model, metrics = FakeModel(), WorkerMetrics()
    run_batch([messages.encode([late])], model, store, metrics)
    assert model.calls == [] and store.get("late").status == EXPIRED
    assert metrics.batches == 0


def test_queue_waits_are_measured_by_priority(store):
    jobs = [job("a", [1]), job("b", [2], priority=BULK)]
    admit(store, *jobs)
    metrics = WorkerMetrics("mnist")
    run_batch([messages.encode(jobs)], FakeModel(), store, metrics)
    wait = metrics.registry.get_sample_value
    for priority in ("interactive", "bulk"):
        assert wait("inferq_worker_queue_wait_seconds_count", {"model": "mnist", "priority": priority}) == 1
        assert wait("inferq_worker_queue_wait_seconds_sum", {"model": "mnist", "priority": priority}) >= 0.25
