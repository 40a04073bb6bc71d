"""Waiting on a job's record: until it ends (``GET /jobs/<id>?wait=S``), or change by change
(``GET /jobs/<id>/events``).

Both wait on the job's channel (``api.queue.job_events``) and read the record when it says the job
changed, and once more after subscribing: a job that ended before the subscription is seen then,
not missed. A quiet channel is no proof that nothing changed (pub/sub delivers at most once), so
the record is also read every ``RECHECK_S``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import redis

from api.errors import ApiError
from api.queue.inference_queue import InferenceQueue
from api.queue.job_events import JobEvents
from inferq.jobs import FINAL, JobRecord

#: Seconds between reads of a watched job's record when its channel is quiet.
RECHECK_S = 5.0


def until_final(queue: InferenceQueue, events: JobEvents, job_id: str, wait_s: float) -> JobRecord:
    """The job's record once it has ended, or as it is after ``wait_s``; a 404 for an unknown job."""
    record = queue.job(job_id)
    if record.status in FINAL or wait_s <= 0:
        return record
    deadline = time.monotonic() + wait_s
    with events.watch(job_id) as watch:
        record = queue.job(job_id)
        while record.status not in FINAL and (left := deadline - time.monotonic()) > 0:
            watch.changed(min(left, RECHECK_S))
            record = queue.job(job_id)
    return record


def changes(queue: InferenceQueue, events: JobEvents, first: JobRecord, max_s: float,
            keepalive_s: float) -> Iterator[JobRecord | None]:
    """``first``, then the job's record each time its status or progress changes, until it ends or
    ``max_s`` passes; None where ``keepalive_s`` went by without a change. Ends early, quietly, if
    the record goes or Redis stops answering: the client may ask again."""
    yield first
    if first.status in FINAL:
        return
    deadline = time.monotonic() + max_s
    shown = _state(first)
    quiet_since = time.monotonic()
    try:
        with events.watch(first.job_id) as watch:
            while True:
                record = queue.job(first.job_id)
                now = time.monotonic()
                if _state(record) != shown:
                    yield record
                    shown, quiet_since = _state(record), now
                if record.status in FINAL or now >= deadline:
                    return
                if now - quiet_since >= keepalive_s:
                    yield None
                    quiet_since = now
                watch.changed(min(deadline - now, RECHECK_S, keepalive_s - (now - quiet_since)))
    except (ApiError, redis.RedisError):  # the record expired, or Redis is out of reach
        return


def _state(record: JobRecord) -> tuple[str, int]:
    return record.status, record.items_done


def wait_parameter(raw: str | None, max_s: float) -> float:
    """``?wait=S``: seconds, 0 or more (none: 0), at most ``max_s``; a 400 for anything else."""
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ApiError(400, f"wait must be a number of seconds, 0 or more (at most {max_s:g} is waited), got {raw!r}")
    return min(value, max_s)
