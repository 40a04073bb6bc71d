"""A chore one worker of the fleet does each interval, whichever asks first.

Each worker asks once its own interval has passed; the first to ask takes the fleet's turn, a key
set only if absent that lasts ``hold_s``, and the others skip this interval. No worker is in
charge: any one that dies leaves the chore to those that live, from the next interval on.
"""

from __future__ import annotations

import time

import redis


class FleetTurn:
    def __init__(self, client: redis.Redis, key: str, *, worker: str, interval_s: float,
                 hold_s: float) -> None:
        """``key``: the turn's key (``inferq.keys``); ``worker``: this worker's name, which the key
        holds while it has the turn; ``hold_s``: how long a turn lasts (at most ``interval_s``)."""
        self._redis = client
        self._key = key
        self._worker = worker
        self._interval_s = interval_s
        self._hold_ms = max(1, int(hold_s * 1000))
        self._next = 0.0

    def taken(self) -> bool:
        """True when this worker's interval has passed and it took the fleet's turn."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval_s
        return bool(self._redis.set(self._key, self._worker, nx=True, px=self._hold_ms))
