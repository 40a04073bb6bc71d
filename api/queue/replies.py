"""Outcomes for the requests an API process is waiting on, delivered by one listener thread.

Each API process has a reply list of its own in Redis, named in the messages of its sync jobs;
workers push each batch's outcomes to it in the same round trip that records them. One thread per
process pops that list and wakes the request threads whose jobs are answered, so a waiting request
costs no Redis call of its own. An outcome nobody waits for any more (the request timed out) is
dropped: the job store has it.

The listener outlives any reply: one it cannot read (not the JSON a worker writes) or deliver is
logged, counted (``inferq_replies_skipped``) and skipped, and the next is read as usual.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

import redis

from inferq.jobs import JobStore, Outcome

log = logging.getLogger(__name__)

#: Seconds a listener blocks on Redis before looking whether it should stop.
POLL_S = 1.0


class Waiter:
    def __init__(self) -> None:
        self._answered = threading.Event()
        self.outcome: Outcome | None = None

    def deliver(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._answered.set()

    def wait(self, timeout_s: float) -> Outcome | None:
        self._answered.wait(timeout_s)
        return self.outcome


class ReplyListener:
    def __init__(self, store: JobStore, *, on_skipped: Callable[[], None] = lambda: None) -> None:
        self._store = store
        #: Called for each reply the listener could not read or deliver (a metric counts them).
        self._on_skipped = on_skipped
        #: This process's reply list, named by a random id (each server process builds its own app).
        self.name = uuid.uuid4().hex
        self._waiters: dict[str, Waiter] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def expect(self, job_id: str) -> Waiter:
        """Register for ``job_id``'s outcome; before the job is sent, so no answer can come first."""
        waiter = Waiter()
        with self._lock:
            self._waiters[job_id] = waiter
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="inferq-replies", daemon=True)
                self._thread.start()
        return waiter

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._waiters.pop(job_id, None)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(POLL_S + 5)

    def _listen(self) -> None:
        # Nothing may end this loop but close(): every sync request of the process waits on it.
        while not self._stop.is_set():
            try:
                replies = self._store.replies(self.name, POLL_S)
            except redis.RedisError as exc:
                log.warning("reply listener: Redis out of reach (%s); retrying", exc)
                self._stop.wait(POLL_S)
                continue
            except Exception:  # a reply that is not one (popped already): its waiters' requests time out
                log.exception("reply listener: skipped a reply it could not read")
                self._skipped()
                continue
            for job_id, outcome in replies:
                try:
                    with self._lock:
                        waiter = self._waiters.pop(job_id, None)
                    if waiter is not None:
                        waiter.deliver(outcome)
                except Exception:
                    log.exception("reply listener: skipped the outcome of job %r", job_id)
                    self._skipped()

    def _skipped(self) -> None:
        try:
            self._on_skipped()
        except Exception:
            log.exception("reply listener: counting a skipped reply failed")
