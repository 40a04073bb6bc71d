import numpy as np
import pytest
import redis

from inferq import messages
from inferq.jobs import DONE, FAILED, JobStore
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


def job(job_id: str, firsts: list[int], reply_to: str | None = None) -> messages.JobInput:
    pixels = np.zeros((len(firsts), 784), np.uint8)
    pixels[:, 0] = firsts
    return messages.JobInput(job_id, pixels.tobytes(), reply_to)


@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=60, max_queue_depth=100)


def admit(store, *jobs):
    assert store.admit([(one.job_id, ["f"] * one.count) for one in jobs]) == [None] * len(jobs)


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
    assert store.queued_images() == 0
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
    assert store.queued_images() == 0


def test_a_message_that_is_not_ours_is_dropped_and_the_others_answered(store):
    admit(store, job("a", [1]))
    run_batch([{"something": "else"}, messages.encode([job("a", [1])])], FakeModel(), store, WorkerMetrics())
    assert store.get("a").status == DONE


def test_redis_out_of_reach_propagates_so_the_batch_is_delivered_again(unreachable_redis):
    store = JobStore(unreachable_redis, result_ttl_s=60, max_queue_depth=100)
    with pytest.raises(redis.ConnectionError):
        run_batch([messages.encode([job("a", [1])])], FakeModel(), store, WorkerMetrics())
