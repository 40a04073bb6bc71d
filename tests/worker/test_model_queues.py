"""The queues a worker consumes, from the repository on disk, and each model's batch limits."""

from __future__ import annotations

import json
import shutil

import pytest
import redis

from inferq.settings import Settings
from tests.worker.fake_loading import add_version
from worker.model_queues import ModelQueues


class FakeConsumer:
    """Celery's consumer, as far as the queues go: records the queues taken up and given up."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.repeated: list[tuple] = []
        self.timer = self

    def add_task_queue(self, queue: str) -> None:
        self.calls.append(("add", queue))

    def cancel_task_queue(self, queue: str) -> None:
        self.calls.append(("cancel", queue))

    def call_repeatedly(self, seconds, callback, args):
        self.repeated.append((seconds, callback, args))


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "models"
    add_version(root / "mnist", 1)
    add_version(root / "resnet", 3)
    return root


def queues_of(repo, fake_redis, **settings) -> ModelQueues:
    return ModelQueues(Settings(model_repository=str(repo), **settings), fake_redis)


def test_each_model_of_the_repository_has_its_queues_interactive_ones_first(repo, fake_redis):
    assert queues_of(repo, fake_redis).names == ["inferq.mnist", "inferq.resnet", "inferq.mnist.bulk",
                                                 "inferq.resnet.bulk"]
    assert queues_of(repo, fake_redis, queue_name="q").names == ["q.mnist", "q.resnet", "q.mnist.bulk",
                                                                 "q.resnet.bulk"]


def test_worker_models_limits_the_queues(repo, fake_redis):
    assert queues_of(repo, fake_redis, worker_models="resnet").names == ["inferq.resnet", "inferq.resnet.bulk"]


def test_model_dir_gives_model_names_queues(tmp_path, fake_redis):
    add_version(tmp_path / "digits", 1)
    queues = ModelQueues(Settings(model_dir=str(tmp_path / "digits"), model_name="digits"), fake_redis)
    assert queues.names == ["inferq.digits", "inferq.digits.bulk"]


def test_an_empty_repository_gives_the_default_models_queues_where_its_work_waits(tmp_path, fake_redis):
    assert queues_of(tmp_path / "empty", fake_redis, default_model="resnet").names == \
        ["inferq.resnet", "inferq.resnet.bulk"]


def test_a_worker_for_named_models_not_there_yet_waits_on_their_queues_not_the_default_models(repo, fake_redis):
    """Its jobs would only fail there: it will serve none of the default model's."""
    assert queues_of(repo, fake_redis, worker_models="bert,gpt").names == \
        ["inferq.bert", "inferq.gpt", "inferq.bert.bulk", "inferq.gpt.bulk"]


def test_batch_limits_come_from_each_models_config_and_the_settings_elsewhere(repo, fake_redis):
    (repo / "resnet" / "config.json").write_text(json.dumps({"max_batch_size": 8, "max_batch_wait_ms": 20}))
    (repo / "mnist" / "config.json").write_text(json.dumps({"max_batch_wait_ms": 0}))
    queues = queues_of(repo, fake_redis, max_batch_size=32, max_batch_wait_ms=4)
    assert queues.batch_limits("resnet") == (8, 0.02)
    assert queues.batch_limits("mnist") == (32, 0.0)
    assert queues.batch_limits("absent") == (32, 0.004)


def test_a_config_that_does_not_load_gives_the_settings_limits(repo, fake_redis):
    (repo / "resnet" / "config.json").write_text(json.dumps({"max_batch_size": -1}))
    queues = queues_of(repo, fake_redis, max_batch_size=32, max_batch_wait_ms=4)
    assert queues.batch_limits("resnet") == (32, 0.004)
    assert queues.names == ["inferq.mnist", "inferq.resnet", "inferq.mnist.bulk", "inferq.resnet.bulk"]


def test_limits_follow_a_change_of_config_at_the_next_sync(repo, fake_redis):
    queues = queues_of(repo, fake_redis, max_batch_size=32)
    (repo / "mnist" / "config.json").write_text(json.dumps({"max_batch_size": 4}))
    queues.sync(FakeConsumer())
    assert queues.batch_limits("mnist")[0] == 4


def test_a_model_added_has_its_queues_taken_up(repo, fake_redis):
    queues, consumer = queues_of(repo, fake_redis), FakeConsumer()
    add_version(repo / "bert", 1)
    queues.sync(consumer)
    assert consumer.calls == [("add", "inferq.bert"), ("add", "inferq.bert.bulk")]
    assert queues.names == ["inferq.bert", "inferq.mnist", "inferq.resnet", "inferq.bert.bulk",
                            "inferq.mnist.bulk", "inferq.resnet.bulk"]
    queues.sync(consumer)
    assert len(consumer.calls) == 2  # nothing new


def test_a_removed_models_empty_queues_are_given_up(repo, fake_redis):
    queues, consumer = queues_of(repo, fake_redis), FakeConsumer()
    shutil.rmtree(repo / "resnet")
    queues.sync(consumer)
    assert consumer.calls == [("cancel", "inferq.resnet"), ("cancel", "inferq.resnet.bulk")]
    assert queues.names == ["inferq.mnist", "inferq.mnist.bulk"]


def test_a_removed_models_queue_that_holds_work_is_kept_until_it_is_empty(repo, fake_redis):
    queues, consumer = queues_of(repo, fake_redis), FakeConsumer()
    fake_redis.lpush("inferq.resnet.bulk", "a message admitted before the model went")
    shutil.rmtree(repo / "resnet")
    queues.sync(consumer)
    assert consumer.calls == [("cancel", "inferq.resnet")]
    assert queues.names == ["inferq.mnist", "inferq.mnist.bulk", "inferq.resnet.bulk"]
    assert queues.queue_length() == 1  # counted while it is consumed
    queues.sync(consumer)
    assert consumer.calls == [("cancel", "inferq.resnet")]  # still holds work
    fake_redis.delete("inferq.resnet.bulk")
    queues.sync(consumer)
    assert consumer.calls == [("cancel", "inferq.resnet"), ("cancel", "inferq.resnet.bulk")]
    assert queues.names == ["inferq.mnist", "inferq.mnist.bulk"]


def test_a_model_back_while_its_old_queue_was_kept_is_not_taken_up_twice(repo, fake_redis):
    queues, consumer = queues_of(repo, fake_redis), FakeConsumer()
    fake_redis.lpush("inferq.resnet", "message")
    shutil.rmtree(repo / "resnet")
    queues.sync(consumer)
    add_version(repo / "resnet", 4)
    queues.sync(consumer)
    assert consumer.calls == [("cancel", "inferq.resnet.bulk"), ("add", "inferq.resnet.bulk")]
    assert queues.names == ["inferq.mnist", "inferq.resnet", "inferq.mnist.bulk", "inferq.resnet.bulk"]


def test_the_queue_length_is_every_consumed_queues(repo, fake_redis):
    fake_redis.lpush("inferq.mnist", "a", "b")
    fake_redis.lpush("inferq.resnet.bulk", "c")
    fake_redis.lpush("inferq.other", "not ours")
    assert queues_of(repo, fake_redis).queue_length() == 3


def test_the_queues_follow_the_repository_on_the_consumers_timer(repo, fake_redis):
    queues, consumer = queues_of(repo, fake_redis, heartbeat_interval_s=1.5), FakeConsumer()
    queues.follow(consumer)
    [(seconds, callback, args)] = consumer.repeated
    assert (seconds, args) == (1.5, (consumer,))
    add_version(repo / "bert", 1)
    callback(*args)
    assert ("add", "inferq.bert") in consumer.calls


def test_redis_out_of_reach_during_a_sync_keeps_the_queues_as_they_were(repo, unreachable_redis):
    queues, consumer = queues_of(repo, unreachable_redis), FakeConsumer()
    before = list(queues.names)
    shutil.rmtree(repo / "resnet")
    queues.sync(consumer)  # logged, not raised: the consumer's timer must go on
    assert queues.names == before and consumer.calls == []
    with pytest.raises(redis.ConnectionError):
        queues.queue_length()


def test_the_first_releases_queues_are_taken_while_they_hold_work_by_the_default_models_workers(repo, fake_redis):
    fake_redis.lpush("inferq.bulk", "a message queued before the upgrade")
    queues, consumer = queues_of(repo, fake_redis), FakeConsumer()
    assert queues.names == ["inferq.mnist", "inferq.resnet", "inferq.mnist.bulk", "inferq.resnet.bulk",
                            "inferq.bulk"]
    assert queues_of(repo, fake_redis, worker_models="resnet").names == ["inferq.resnet", "inferq.resnet.bulk"]
    fake_redis.delete("inferq.bulk")
    queues.sync(consumer)
    assert consumer.calls == [("cancel", "inferq.bulk")]
    fake_redis.lpush("inferq", "another, pushed by an API of the first releases still running")
    queues.sync(consumer)
    assert consumer.calls[-1] == ("add", "inferq") and "inferq" in queues.names
