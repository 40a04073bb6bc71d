"""The batching policy of ItemBatches, with celery-batches' buffering and pool stubbed out."""

from types import SimpleNamespace

import pytest
import redis
from celery_batches import Batches

from inferq.broker import INTERACTIVE_LEFT, QUEUE_LENGTH
from inferq.messages import IMAGES_HEADER, MODEL_HEADER
from worker.item_batches import BATCH_ACKED, BATCH_DONE, ItemBatches


class Policy(ItemBatches):
    max_items = 8


class Timer:
    """The consumer's timer: records deadlines instead of keeping time."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, object]] = []

    def call_after(self, seconds, callback):
        def fire():
            self.pending.remove(entry)
            callback()

        entry = SimpleNamespace(cancel=lambda: self.pending.remove(entry), seconds=seconds, fire=fire)
        self.pending.append(entry)
        return entry


@pytest.fixture
def flushes() -> list[int]:
    return []


@pytest.fixture
def batches(monkeypatch, flushes):
    monkeypatch.setattr(Batches, "Strategy", lambda self, task, app, consumer: lambda *a, **k: None)
    monkeypatch.setattr(Batches, "_do_flush", lambda self: flushes.append(1))
    task = Policy()
    task.backlog = [0]
    task.queue_length = lambda: task.backlog.pop(0)
    task.timer = Timer()
    handle = task.Strategy(task, None, SimpleNamespace(timer=task.timer))

    def deliver(images: int, queue_length: int | None = None, *, queue: str = "inferq.mnist",
                interactive_left: int | None = None, model: str | None = "mnist") -> bool:
        before = len(flushes)
        delivery_info = {"routing_key": queue}
        if queue_length is not None:
            delivery_info.update({QUEUE_LENGTH: queue_length, INTERACTIVE_LEFT: interactive_left})
        headers = {IMAGES_HEADER: images, **({MODEL_HEADER: model} if model is not None else {})}
        handle(SimpleNamespace(headers=headers, delivery_info=delivery_info), None, None, None, set())
        return len(flushes) > before

    return task, deliver


def test_a_lone_message_on_an_empty_queue_runs_at_once(batches):
    task, deliver = batches
    assert deliver(1)


def test_behind_a_backlog_the_batch_waits_for_the_messages_seen_then_looks_again(batches):
    task, deliver = batches
    task.backlog = [3, 0]
    assert not deliver(1)  # three more are queued: wait for them
    assert not deliver(1)
    assert not deliver(1)
    assert deliver(1)  # all three came and the queue is empty again
    assert task.backlog == []


def test_a_message_that_tells_the_queue_length_spares_the_look(batches):
    task, deliver = batches
    task.backlog = []  # any look would fail
    assert not deliver(1, queue_length=2)
    assert not deliver(1, queue_length=1)
    assert deliver(1, queue_length=0)


def test_a_batch_runs_when_it_holds_max_images_counted_in_images(batches):
    task, deliver = batches
    task.backlog = [100]
    assert not deliver(3)
    assert not deliver(4)
    assert deliver(2)  # 9 images >= 8


def test_a_batch_runs_at_its_deadline_when_nothing_more_is_queued(batches, flushes):
    task, deliver = batches
    task.backlog = [100]
    assert not deliver(1)
    assert not deliver(1)
    [deadline] = task.timer.pending
    assert deadline.seconds == Policy.max_wait_s
    task.backlog = [0]
    deadline.fire()
    assert task.timer.pending == [] and len(flushes) == 1
    task.backlog = [100]
    assert not deliver(1)  # the next batch has a deadline of its own
    assert len(task.timer.pending) == 1


def test_past_its_deadline_a_batch_keeps_taking_what_is_already_queued(batches, flushes):
    task, deliver = batches
    task.backlog = [100]
    assert not deliver(1)
    [deadline] = task.timer.pending
    task.backlog = [40]
    deadline.fire()
    assert flushes == [] and len(task.timer.pending) == 1  # waits again: work is there to take
    task.backlog = [100]
    assert not deliver(3, queue_length=39)
    assert deliver(4, queue_length=38)  # 8 images: full


def test_a_batch_run_early_cancels_its_deadline(batches):
    task, deliver = batches
    assert deliver(1)
    assert task.timer.pending == []


def test_an_unreadable_queue_length_runs_the_batch_now(batches):
    task, deliver = batches

    def broken() -> int:
        raise redis.ConnectionError("gone")

    task.queue_length = broken
    assert deliver(1)


class Request:
    def __init__(self) -> None:
        self.acked = self.requeued = False

    def acknowledge(self) -> None:
        self.acked = True

    def reject(self, requeue: bool = False) -> None:
        self.requeued = requeue


class Pool:
    def __init__(self, outcome: str) -> None:
        self.outcome = outcome

    def apply_async(self, target, args, callback, error_callback):
        if self.outcome == "lost":
            error_callback("WorkerLostError")
        else:
            callback({"done": BATCH_DONE, "acked": BATCH_ACKED}.get(self.outcome))


# "acked": the task says its finish acknowledged them, but these requests came by no channel of
# inferq.broker's, so nothing was handed to it to acknowledge: kombu's own acks are made.
@pytest.mark.parametrize(("outcome", "acked"), [("done", True), ("acked", True), ("raised", False), ("lost", False)])
def test_messages_are_acked_once_their_batch_ran_else_delivered_again(monkeypatch, outcome, acked):
    monkeypatch.setattr("worker.item_batches.SimpleRequest.from_request", lambda request: request)
    task = Policy()
    task._pool = Pool(outcome)
    requests = [Request(), Request()]
    task.flush(requests)
    assert all(r.acked == acked and r.requeued == (not acked) for r in requests)


def test_interactive_work_runs_once_no_more_is_queued_without_waiting_for_the_bulk_backlog(batches):
    task, deliver = batches
    task.backlog = []  # the claim tells the lengths
    assert not deliver(1, queue_length=40, interactive_left=1)  # more interactive work is coming
    assert deliver(1, queue_length=39, interactive_left=0)  # the rest is bulk: run now


def test_bulk_work_behind_a_backlog_still_fills_its_batch(batches):
    task, deliver = batches
    task.backlog = []
    assert not deliver(3, queue_length=40, queue="inferq.mnist.bulk", interactive_left=0)
    assert deliver(5, queue_length=39, queue="inferq.mnist.bulk", interactive_left=0)  # full: 8 images


def test_a_batch_that_took_interactive_work_behind_bulk_runs_when_that_is_all(batches):
    task, deliver = batches
    task.backlog = []
    assert not deliver(2, queue_length=40, queue="inferq.mnist.bulk", interactive_left=1)
    assert deliver(1, queue_length=39, interactive_left=0)


LIMITS = {"small": (4, 0.002), "large": (100, 0.05)}


def test_each_models_images_are_counted_against_its_own_batch_size(batches):
    task, deliver = batches
    task.batch_limits = LIMITS.get
    task.backlog = [100]
    assert not deliver(3, model="large", queue="inferq.large")
    assert not deliver(3, model="small", queue="inferq.small")  # 3 of 4: the large model's do not count
    assert not deliver(90, model="large", queue="inferq.large")
    assert deliver(1, model="small", queue="inferq.small")  # 4 of the small model's: full


def test_a_batch_full_for_one_model_starts_the_next_with_every_count_at_zero(batches):
    task, deliver = batches
    task.batch_limits = LIMITS.get
    task.backlog = [100]
    assert not deliver(3, model="small")
    assert deliver(100, model="large")
    task.backlog = [100]
    assert not deliver(3, model="small")  # counted from zero again
    assert deliver(1, model="small")


def test_a_batch_waits_as_long_as_its_first_model_says(batches):
    task, deliver = batches
    task.batch_limits = LIMITS.get
    task.backlog = [100]
    assert not deliver(1, model="large")
    assert not deliver(1, model="small")
    [deadline] = task.timer.pending
    assert deadline.seconds == 0.05
    task.backlog = [40]
    deadline.fire()  # more queued: it waits again, as long
    [deadline] = task.timer.pending
    assert deadline.seconds == 0.05
    task.backlog = [0]
    deadline.fire()
    task.backlog = [100]
    assert not deliver(1, model="small")
    assert [entry.seconds for entry in task.timer.pending] == [0.002]


def test_a_message_without_a_model_header_counts_with_the_tasks_own_limits(batches):
    task, deliver = batches
    asked = []
    task.batch_limits = lambda model: asked.append(model) or (Policy.max_items, Policy.max_wait_s)
    task.backlog = [100]
    assert not deliver(7, model=None)
    assert deliver(1, model=None)  # 8: Policy.max_items
    assert asked == ["", ""]


def test_without_the_apps_limits_every_model_has_the_tasks():
    assert Policy().batch_limits("anything") == (8, Policy.max_wait_s)


def test_the_batch_task_is_handed_its_messages_as_held_only_where_the_broker_holds_them(monkeypatch):
    monkeypatch.setattr("worker.item_batches.SimpleRequest.from_request", lambda request: request)
    applied = []
    task = Policy()
    task._pool = type("Recording", (), {"apply_async": lambda self, target, args, **_: applied.append(args)})()
    requests = [Request()]
    task.flush(requests)
    [(_, (simple, held), _, _)] = applied
    assert simple == requests and held is None
