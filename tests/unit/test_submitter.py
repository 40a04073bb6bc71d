"""The submitter: concurrent requests share messages, and a sender works only until its own job is out."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import redis

from api.errors import SendFailed
from api.queue.submitter import Submitter
from inferq import messages, priorities
from inferq.broker import Envelope
from inferq.jobs import QueueFull
from inferq.priorities import BULK
from inferq.tenants import DEFAULT
from tests.support.waiting import wait_for

MODEL = "mnist"


class FakeMessages:
    """Task messages as job ids, on the model's queue "inferq.<model>" (interactive) or "inferq.<model>.bulk"."""

    def __init__(self) -> None:
        #: Whether each message was built with its large tensors left out.
        self.store_large: list[bool] = []

    def envelope(self, model, jobs, priority, store_large=True, tenant=None):
        self.store_large.append(store_large)
        return Envelope(priorities.queue(f"inferq.{model}", priority), json.dumps([job.job_id for job in jobs]))


class FakeStore:
    """Admits jobs all or none, pushing the message of an admission where every job fit, as the real one does.

    An admission can be held open (``hold``), and admissions can fail: all, or those after the first few.
    """

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.refuse = refuse
        #: Each admission asked for, admitted or not.
        self.admitted: list[list[str]] = []
        #: The inputs stored with each admission, by job id and input name.
        self.stored: list[dict] = []
        #: Each queued message's job ids, and the thread that sent it.
        self.sent: list[tuple[list[str], str]] = []
        self.hold = threading.Event()
        self.hold.set()
        #: Each refusal counted: (tenant, limit, items).
        self.refusals: list[tuple[str, str, int]] = []
        self.sending = threading.Event()
        self.fail = False
        #: How many admissions succeed before every later one fails (None: all succeed).
        self.fail_after: int | None = None

    def count_refused(self, tenant, limit, items):
        self.refusals.append((tenant, limit, items))

    def admit(self, jobs, *, model, priority, enqueue=None, stored_inputs=None, reply_to=None, tenant=DEFAULT):
        assert (model, priority, tenant) == (MODEL, BULK, DEFAULT)
        self.sending.set()
        self.hold.wait(10)
        if self.fail or (self.fail_after is not None and len(self.admitted) >= self.fail_after):
            raise redis.ConnectionError("Redis went away")
        self.admitted.append([job_id for job_id, _ in jobs])
        self.stored.append(stored_inputs)
        refusals = [7 if job_id in self.refuse else None for job_id, _ in jobs]
        if enqueue is not None and refusals == [None] * len(jobs):
            self._push(enqueue)
        return refusals

    def _push(self, message: Envelope) -> None:
        assert message.queue_key == "inferq.mnist.bulk"
        self.sent.append((json.loads(message.raw), threading.current_thread().name))


def submitter_on(store: FakeStore, built: FakeMessages | None = None, **options) -> Submitter:
    return Submitter(built or FakeMessages(), store, model=MODEL, priority=BULK,
                     **{"max_items_per_message": 64, **options})


def job(job_id: str, images: int = 1) -> messages.JobInput:
    return messages.JobInput(job_id, {"inputdata": np.zeros((images, 784), np.uint8)}, None)


def submit_in_thread(submitter: Submitter, job_id: str, errors: dict[str, Exception]) -> threading.Thread:
    def run() -> None:
        try:
            submitter.submit(job(job_id), ["x.png"])
        except Exception as exc:
            errors[job_id] = exc

    thread = threading.Thread(target=run, name=job_id)
    thread.start()
    return thread


def submit_during_a_send(submitter: Submitter, store: FakeStore, names: tuple[str, ...]) -> dict:
    """Submit "first", and while its admission is held open, the jobs ``names`` in order.

    Waits for every submission to return; answers the errors they raised, by job id.
    """
    errors: dict[str, Exception] = {}
    store.hold.clear()
    first = submit_in_thread(submitter, "first", errors)
    assert store.sending.wait(5)
    later = []
    for name in names:
        later.append(submit_in_thread(submitter, name, errors))
        wait_for(lambda n=name: any(p.job.job_id == n for p in submitter._pending), 5, f"{name} to queue")
    store.hold.set()
    for thread in (first, *later):
        thread.join(5)
    return errors


def test_a_lone_job_is_sent_at_once_by_its_own_thread():
    store = FakeStore()
    submitter_on(store).submit(job("a"), ["a.png"])
    assert store.sent == [(["a"], threading.current_thread().name)]


def test_jobs_queued_during_a_send_go_out_together_sent_by_the_oldest_not_by_the_first_sender():
    store = FakeStore()
    submitter = submitter_on(store)
    errors = submit_during_a_send(submitter, store, ("b", "c", "d"))
    assert errors == {}
    assert store.sent == [(["first"], "first"), (["b", "c", "d"], "b")]
    assert store.admitted == [["first"], ["b", "c", "d"]]


def test_a_message_holds_at_most_max_items():
    store = FakeStore()
    submitter = submitter_on(store, max_items_per_message=3)
    errors = submit_during_a_send(submitter, store, ("b", "c", "d", "e"))
    assert errors == {}
    assert [ids for ids, _ in store.sent] == [["first"], ["b", "c", "d"], ["e"]]


def test_a_job_that_would_overfill_the_queue_is_refused_and_the_others_are_sent():
    store = FakeStore(refuse={"full"})
    submitter = submitter_on(store)
    with pytest.raises(QueueFull) as refused:
        submitter.submit(job("full"), ["x.png"])
    assert (refused.value.depth, refused.value.priority, refused.value.model) == (7, BULK, MODEL)
    assert str(refused.value) == "7 bulk items are queued for model 'mnist'"
    submitter.submit(job("fits"), ["x.png"])
    assert [ids for ids, _ in store.sent] == [["fits"]]


def test_jobs_that_fit_beside_a_refused_one_are_admitted_again_with_a_message_of_their_own():
    store = FakeStore(refuse={"full"})
    submitter = submitter_on(store)
    errors = submit_during_a_send(submitter, store, ("full", "fits", "fits-too"))
    assert isinstance(errors.pop("full"), QueueFull)
    assert errors == {}
    assert store.admitted == [["first"], ["full", "fits", "fits-too"], ["fits", "fits-too"]]
    assert [ids for ids, _ in store.sent] == [["first"], ["fits", "fits-too"]]


def test_an_admission_that_fails_admits_nothing_and_fails_the_request():
    store = FakeStore()
    store.fail = True
    with pytest.raises(SendFailed, match="Redis went away"):
        submitter_on(store).submit(job("a", images=2), ["1", "2"])
    assert store.admitted == []
    assert store.sent == []


def test_jobs_that_fit_whose_second_admission_fails_fail_with_nothing_left_admitted():
    store = FakeStore(refuse={"full"})
    submitter = submitter_on(store)
    store.hold.clear()
    errors: dict[str, Exception] = {}
    first = submit_in_thread(submitter, "first", errors)
    assert store.sending.wait(5)
    later = [submit_in_thread(submitter, name, errors) for name in ("full",)]
    wait_for(lambda: any(p.job.job_id == "full" for p in submitter._pending), 5, "full to queue")
    later.append(submit_in_thread(submitter, "fits", errors))
    wait_for(lambda: any(p.job.job_id == "fits" for p in submitter._pending), 5, "fits to queue")
    store.fail_after = 2
    store.hold.set()
    for thread in (first, *later):
        thread.join(5)
    assert isinstance(errors.pop("full"), QueueFull)
    assert isinstance(errors.pop("fits"), SendFailed)
    assert errors == {}
    # The admission that failed admitted nothing (the real store's is one script): nothing to withdraw.
    assert store.admitted == [["first"], ["full", "fits"]]
    assert [ids for ids, _ in store.sent] == [["first"]]


def test_a_request_that_waits_too_long_gives_up_and_its_job_is_never_sent():
    store = FakeStore()
    submitter = submitter_on(store, send_timeout_s=0.3)
    errors: dict[str, Exception] = {}
    store.hold.clear()
    first = submit_in_thread(submitter, "first", errors)
    assert store.sending.wait(5)
    stuck = submit_in_thread(submitter, "stuck", errors)
    stuck.join(5)
    assert isinstance(errors.pop("stuck"), SendFailed)
    store.hold.set()
    first.join(5)
    submitter.submit(job("next"), ["x.png"])
    assert errors == {}
    assert [ids for ids, _ in store.sent] == [["first"], ["next"]]


@pytest.mark.parametrize(("workers_read", "stored"), [(True, True), (False, False), (None, False)])
def test_large_tensors_are_stored_beside_the_message_only_when_every_worker_reads_them(workers_read, stored):
    """None: the question could not be answered (Redis): inline, which every worker reads."""
    def ask() -> bool:
        if workers_read is None:
            raise redis.ConnectionError("Redis went away")
        return workers_read

    store, built = FakeStore(), FakeMessages()
    big = job("big", images=messages.MAX_INLINE_BYTES // 784 + 1)
    submitter_on(store, built, store_large=ask).submit(big, ["big.idx"])
    assert built.store_large == [stored]
    assert store.stored == [{"big": {"inputdata": big.inputs["inputdata"].tobytes()}} if stored else {}]
    assert store.sent == [(["big"], "MainThread")]
