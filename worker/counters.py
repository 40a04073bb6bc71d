"""Keeps the queued-items counters true: now and then, one worker of the fleet recounts them, each
lane's and then each tenant's.

Admission counts a job's items up and its finish counts them down, in the same scripts that record
the job (``inferq.jobs``), so the counters stay right by themselves. This recount is for whatever
slipped past those scripts (a job deleted by hand, a bug, a release that counted differently):
without it a counter left high would refuse its lane's work for good.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import redis

from inferq import keys
from inferq.fleet_turns import FleetTurn
from inferq.jobs import JobStore

log = logging.getLogger(__name__)


class CounterRecount:
    def __init__(self, client: redis.Redis, store: JobStore, models: Callable[[], Sequence[str]], *,
                 worker: str, interval_s: float) -> None:
        """``models``: the models whose counters to recount; ``worker``: this worker's name, which
        holds the fleet's turn while it recounts; ``interval_s``: how often the fleet recounts."""
        self._store = store
        self._models = models
        self._turn = FleetTurn(client, keys.RECOUNT_TURN, worker=worker, interval_s=interval_s,
                               hold_s=max(1, int(interval_s)))

    def maybe_run(self) -> None:
        """Recount if this worker's interval has passed and no other worker took the turn."""
        if not self._turn.taken():
            return
        models = self._models()
        for (model, priority), forgotten in self._store.reconcile(models).items():
            if forgotten:
                log.warning("recounted %s %s: %d jobs counted as queued had ended or were gone",
                            model, priority, forgotten)
        # After the lanes: the jobs forgotten there are what a tenant's counter still holds.
        for tenant, (before, after) in self._store.recount_tenants(models).items():
            log.warning("recounted tenant %s: %d items counted as queued, %d are", tenant, before, after)
