"""worker/image_batches.py relies on celery-batches' internals: this fails, naming them, when it moves."""

from __future__ import annotations

import importlib.metadata
import inspect
import queue

from celery_batches import Batches
from celery_batches.trace import apply_batches_task

from worker.image_batches import CELERY_BATCHES_INTERNALS, TESTED_CELERY_BATCHES

INSTALLED = importlib.metadata.version("celery-batches")
RECHECK = (f"worker/image_batches.py was written for celery-batches {', '.join(TESTED_CELERY_BATCHES)} and "
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


def test_strategy_keeps_the_consumers_pool_where_flush_reads_it():
    assert "self._pool = consumer.pool" in inspect.getsource(Batches.Strategy), RECHECK
    assert "self._pool.apply_async" in inspect.getsource(Batches.flush), RECHECK


def test_apply_batches_task_takes_the_arguments_flush_passes():
    assert list(inspect.signature(apply_batches_task).parameters) == ["task", "args", "loglevel", "logfile"], RECHECK
