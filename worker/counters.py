"""Keeps the queued-items counters true: now and then, one worker of the fleet recounts them.

Admission counts a job's items up and its finish counts them down, in the same scripts that record
the job (``inferq.jobs``), so the counters stay right by themselves. This recount is for whatever
slipped past those scripts (a job deleted by hand, a bug, a release that counted differently):
without it a counter left high would refuse its lane's work for good.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import redis

from inferq import keys
from inferq.jobs import JobStore

log = logging.getLogger(__name__)


class CounterRecount:
    def __init__(self, client: redis.Redis, store: JobStore, models: Callable[[], Sequence[str]], *,
                 worker: str, interval_s: float) -> None:
        """``models``: the models whose counters to recount; ``worker``: this worker's name, which
        holds the fleet's turn while it recounts; ``interval_s``: how often the fleet recounts."""
        self._redis = client
        self._store = store
        self._models = models
        self._worker = worker
        self._interval_s = interval_s
        self._next = 0.0

    def maybe_run(self) -> None:
        """Recount if this worker's interval has passed and no other worker took the turn."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval_s
        if not self._redis.set(keys.RECOUNT_TURN, self._worker, nx=True, ex=max(1, int(self._interval_s))):
            return
        for (model, priority), forgotten in self._store.reconcile(self._models()).items():
            if forgotten:
                log.warning("recounted %s %s: %d jobs counted as queued had ended or were gone",
                            model, priority, forgotten)
