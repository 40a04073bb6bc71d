"""The submitter: concurrent requests share messages, and a sender works only until its own job is out."""

from __future__ import annotations

import json
import threading

import pytest

from api.submitter import SendFailed, Submitter
from inferq import messages
from inferq.jobs import QueueFull
from inferq.model_contract import N_INPUT
from tests.support.waiting import wait_for


class FakeStore:
    """Admits jobs, pushing the message of an admission where every job fit, as the real one does."""

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.refuse = refuse
        self.admitted: list[list[str]] = []
        self.withdrawn: list[dict[str, int]] = []
        self.queue: list[tuple[list[str], str]] = []

    def admit(self, jobs, *, enqueue=None):
        self.admitted.append([job_id for job_id, _ in jobs])
        refusals = [7 if job_id in self.refuse else None for job_id, _ in jobs]
        if enqueue is not None and refusals == [None] * len(jobs):
            key, message = enqueue
            assert key == "inferq"
            self.queue.append(message_of(message))
        return refusals

    def withdraw(self, jobs):
        self.withdrawn.append(dict(jobs))


class FakePublisher:
    """Hands each message to the caller's push, or queues it itself; a publish can be held open."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.hold = threading.Event()
        self.hold.set()
        self.sending = threading.Event()
        self.fail = False
        #: Fail only messages the publisher queues itself (no push given).
        self.fail_own_push = False

    @property
    def sent(self) -> list[tuple[list[str], str]]:
        """Each queued message's job ids, and the thread that sent it."""
        return self.store.queue

    def publish(self, body, *, images, description, push=None):
        assert images == messages.image_count(messages.decode(body))
        self.sending.set()
        self.hold.wait(10)
        if self.fail or (self.fail_own_push and push is None):
            raise ConnectionError("the broker went away")
        message = json.dumps(body)
        if push is not None:
            push("inferq", message)
        else:
            self.store.queue.append(message_of(message))


def message_of(raw: str) -> tuple[list[str], str]:
    return [job.job_id for job in messages.decode(json.loads(raw))], threading.current_thread().name


def job(job_id: str, images: int = 1) -> messages.Job:
    return messages.Job(job_id, bytes(N_INPUT * images), None)


def submit_in_thread(submitter: Submitter, job_id: str, errors: dict[str, Exception]) -> threading.Thread:
    def run() -> None:
        try:
            submitter.submit(job(job_id), ["x.png"])
        except Exception as exc:
            errors[job_id] = exc

    thread = threading.Thread(target=run, name=job_id)
    thread.start()
    return thread


def submit_during_a_send(submitter: Submitter, publisher: FakePublisher, names: tuple[str, ...]) -> dict:
    """Submit "first", and while its message is held in publishing, the jobs ``names`` in order.

    Waits for every submission to return; answers the errors they raised, by job id.
    """
    errors: dict[str, Exception] = {}
    publisher.hold.clear()
    first = submit_in_thread(submitter, "first", errors)
    assert publisher.sending.wait(5)
    later = []
    for name in names:
        later.append(submit_in_thread(submitter, name, errors))
        wait_for(lambda n=name: any(p.job.job_id == n for p in submitter._pending), 5, f"{name} to queue")
    publisher.hold.set()
    for thread in (first, *later):
        thread.join(5)
    return errors


def test_a_lone_job_is_sent_at_once_by_its_own_thread():
    publisher = FakePublisher(FakeStore())
    Submitter(publisher, publisher.store, max_images_per_message=64).submit(job("a"), ["a.png"])
    assert publisher.sent == [(["a"], threading.current_thread().name)]


def test_jobs_queued_during_a_send_go_out_together_sent_by_the_oldest_not_by_the_first_sender():
    store = FakeStore()
    publisher = FakePublisher(store)
    submitter = Submitter(publisher, store, max_images_per_message=64)
    errors = submit_during_a_send(submitter, publisher, ("b", "c", "d"))
    assert errors == {}
    assert publisher.sent == [(["first"], "first"), (["b", "c", "d"], "b")]
    assert store.admitted == [["first"], ["b", "c", "d"]]


def test_a_message_holds_at_most_max_images():
    publisher = FakePublisher(FakeStore())
    submitter = Submitter(publisher, publisher.store, max_images_per_message=3)
    errors = submit_during_a_send(submitter, publisher, ("b", "c", "d", "e"))
    assert errors == {}
    assert [ids for ids, _ in publisher.sent] == [["first"], ["b", "c", "d"], ["e"]]


def test_a_job_that_would_overfill_the_queue_is_refused_and_the_others_are_sent():
    publisher = FakePublisher(FakeStore(refuse={"full"}))
    submitter = Submitter(publisher, publisher.store, max_images_per_message=64)
    with pytest.raises(QueueFull) as refused:
        submitter.submit(job("full"), ["x.png"])
    assert refused.value.depth == 7
    submitter.submit(job("fits"), ["x.png"])
    assert [ids for ids, _ in publisher.sent] == [["fits"]]


def test_jobs_that_fit_beside_a_refused_one_go_out_in_a_message_of_their_own():
    publisher = FakePublisher(FakeStore(refuse={"full"}))
    submitter = Submitter(publisher, publisher.store, max_images_per_message=64)
    errors = submit_during_a_send(submitter, publisher, ("full", "fits"))
    assert isinstance(errors.pop("full"), QueueFull)
    assert errors == {}
    assert publisher.store.admitted == [["first"], ["full", "fits"]]
    assert [ids for ids, _ in publisher.sent] == [["first"], ["fits"]]


def test_a_publish_that_fails_admits_nothing_and_fails_the_request():
    store = FakeStore()
    publisher = FakePublisher(store)
    publisher.fail = True
    with pytest.raises(SendFailed, match="the broker went away"):
        Submitter(publisher, store, max_images_per_message=64).submit(job("a", images=2), ["1", "2"])
    assert store.admitted == []
    assert publisher.sent == []


def test_admitted_jobs_whose_own_message_fails_are_withdrawn():
    store = FakeStore(refuse={"full"})
    publisher = FakePublisher(store)
    publisher.fail_own_push = True
    submitter = Submitter(publisher, store, max_images_per_message=64)
    errors = submit_during_a_send(submitter, publisher, ("full", "fits"))
    assert isinstance(errors.pop("full"), QueueFull)
    assert isinstance(errors.pop("fits"), SendFailed)
    assert store.withdrawn == [{"fits": 1}]
    assert [ids for ids, _ in publisher.sent] == [["first"]]


def test_a_request_that_waits_too_long_gives_up_and_its_job_is_never_sent():
    store = FakeStore()
    publisher = FakePublisher(store)
    submitter = Submitter(publisher, store, max_images_per_message=64, send_timeout_s=0.3)
    errors: dict[str, Exception] = {}
    publisher.hold.clear()
    first = submit_in_thread(submitter, "first", errors)
    assert publisher.sending.wait(5)
    stuck = submit_in_thread(submitter, "stuck", errors)
    stuck.join(5)
    assert isinstance(errors.pop("stuck"), SendFailed)
    publisher.hold.set()
    first.join(5)
    submitter.submit(job("next"), ["x.png"])
    assert errors == {}
    assert [ids for ids, _ in publisher.sent] == [["first"], ["next"]]
