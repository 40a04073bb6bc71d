"""worker/item_batches.py relies on celery-batches' internals: this fails, naming them, when it moves."""

from __future__ import annotations

import importlib.metadata
import inspect
import queue
import types

import celery
from celery_batches import Batches
from celery_batches.trace import apply_batches_task

from worker.item_batches import CELERY_BATCHES_INTERNALS, TESTED_CELERY_BATCHES

INSTALLED = importlib.metadata.version("celery-batches")
RECHECK = (f"worker/item_batches.py was written for celery-batches {', '.join(TESTED_CELERY_BATCHES)} and "
           f"relies on {'; '.join(CELERY_BATCHES_INTERNALS)}; celery-batches {INSTALLED} is installed: "
           "re-check those, then extend TESTED_CELERY_BATCHES")


def test_the_installed_celery_batches_is_one_the_seam_was_written_for():
    assert INSTALLED in TESTED_CELERY_BATCHES, RECHECK


def test_do_flush_hands_every_buffered_request_to_flush_and_empties_the_buffer():
    flushed = []

    class Recording(Batches):
        abstract = True

        def flush(self, requests):
            flushed.append(list(requests))

    task = Recording()
    task._buffer, task._pending = queue.Queue(), queue.Queue()
    for name in ("a", "b"):
        task._buffer.put(type("Request", (), {"eta": None, "name": name})())
    task._do_flush()
    assert [[request.name for request in batch] for batch in flushed] == [["a", "b"]], RECHECK
    assert task._buffer.empty(), RECHECK


class Pool:
    """A consumer's pool as far as the batch task uses it: it records what it is asked to run."""

    def __init__(self) -> None:
        self.applied: list[tuple] = []

    def apply_async(self, target, args, **callbacks):
        self.applied.append((target, args, callbacks))


def consumer_with(pool: Pool):
    return types.SimpleNamespace(pool=pool, hostname="contract@test", connection_errors=(), event_dispatcher=None,
                                 timer=None)


def test_strategy_keeps_the_consumers_pool_on_the_task():
    app = celery.Celery("contract", set_as_current=False)

    @app.task(base=Batches, bind=True, shared=False)
    def batch(self, requests):
        return None

    pool = Pool()
    batch.Strategy(batch, app, consumer_with(pool))
    assert batch._pool is pool, RECHECK


def test_flush_runs_apply_batches_task_on_the_pool_it_kept():
    """ItemBatches.flush does what Batches.flush does, with its own callbacks: the pool kept by the
    strategy runs apply_batches_task with (task, ([SimpleRequest, ...],), loglevel, logfile)."""
    app = celery.Celery("contract", set_as_current=False)

    @app.task(base=Batches, bind=True, shared=False)
    def batch(self, requests):
        return None

    pool = Pool()
    batch.Strategy(batch, app, consumer_with(pool))
    Batches.flush(batch, [])
    [(target, args, callbacks)] = pool.applied
    assert target is apply_batches_task and args[0] is batch and args[1] == ([],), RECHECK
    assert "callback" in callbacks, RECHECK


def test_apply_batches_task_takes_the_arguments_flush_passes():
    assert list(inspect.signature(apply_batches_task).parameters) == ["task", "args", "loglevel", "logfile"], RECHECK


def test_apply_batches_task_calls_the_task_with_every_item_of_args_and_answers_its_result():
    """The batch's held messages (inferq.broker.held_messages) travel as args' second item, and
    the task's answer (BATCH_ACKED or BATCH_DONE) reaches flush's callback."""
    app = celery.Celery("contract", set_as_current=False)
    seen = []

    @app.task(base=Batches, shared=False)
    def batch(requests, held=None):
        seen.append((requests, held))
        return "answer"

    assert apply_batches_task(batch, ([], "held"), 0, None) == "answer", RECHECK
    assert seen == [([], "held")], RECHECK
