"""Interactive load at a fixed rate, open loop: latency counted from each request's scheduled send.

A closed-loop generator (wrk's N clients) sends the next request only when the last is answered, so
a slow system is sent less and its queueing never shows (coordinated omission), and N clients
that saturate the API measure the API, not what bulk work does to a person's request. Here requests
are due at a fixed rate whatever the answers, each sent by whichever sender thread is free, and
its latency runs from when it was due: a request that waits for a free sender counts that wait.

:meth:`OpenLoop.stages` splits each answered request's time by where it went, from its job's record
(``created_at``, ``started_at``, ``finished_at``): what an interactive request waits behind.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import redis

from bench.bodies import MULTIPART
from bench.load import Poster, ThreadedLoad
from inferq import keys

#: Senders: enough that a few slow answers do not hold the schedule up at the rates used here.
SENDERS = 16


@dataclasses.dataclass
class OpenLoopResult:
    rate_per_s: float
    sent: int
    p50_ms: float
    p99_ms: float
    errors: int


class OpenLoop(ThreadedLoad):
    """``with OpenLoop(url, rate, bodies) as load: ...; load.result()``: sync ``POST /recognize``
    of the one-image ``bodies`` (``bench.bodies.one_image_bodies``) at ``rate_per_s``: turn ``n`` is
    due ``n / rate_per_s`` after the start, sent by whichever sender is free."""

    def __init__(self, base_url: str, rate_per_s: float, bodies: list[Path], *, path: str = "/recognize",
                 headers: dict[str, str] | None = None, senders: int = SENDERS) -> None:
        super().__init__(["sync"] * senders, base_url, timeout_s=30, join_s=30)
        self._rate = rate_per_s
        self._bodies = [body.read_bytes() for body in bodies]
        self._path = path
        self._headers = {**MULTIPART, **(headers or {})}
        self._started = 0.0
        self._latencies_s: list[float] = []
        #: Each answered request's (due, sent, answered) in unix seconds, and its job id.
        self._answered: list[tuple[float, float, float, str]] = []
        self._unix_offset = time.time() - time.monotonic()
        self._errors = 0

    def start(self) -> None:
        self._started = time.monotonic()
        super().start()

    def send(self, lane: str, turn: int, poster: Poster) -> None:
        due = self._started + turn / self._rate
        if self.stopping.wait(max(0.0, due - time.monotonic())):
            return
        reply = poster.post(self._path, self._bodies[turn % len(self._bodies)], self._headers)
        with self.lock:
            if reply.status == 200:
                self._latencies_s.append(reply.at - due)
                job_id = _job_id(reply.body)
                if job_id is not None:
                    offset = self._unix_offset
                    self._answered.append((due + offset, reply.sent + offset, reply.at + offset, job_id))
            else:
                self._errors += 1

    def result(self) -> OpenLoopResult:
        with self.lock:
            latencies = sorted(self._latencies_s)
            errors = self._errors
        return OpenLoopResult(self._rate, len(latencies) + errors, _percentile(latencies, 0.5) * 1000,
                              _percentile(latencies, 0.99) * 1000, errors)

    def stages(self, client: redis.Redis) -> dict[str, dict[str, float]]:
        """p50 and p99 in ms of each stage of the answered requests: waiting for a sender; sent to
        admitted (the API reading, decoding and admitting it); admitted to started (the message
        pushed, waiting in its queue, claimed, the batch decoded); started to finished (the batch's
        model calls and the outcome written); finished to answered (the reply to the API, the HTTP
        answer). Worker and API stamp the record with their own clocks: one machine's, here."""
        with self.lock:
            answered = list(self._answered)
        with client.pipeline(transaction=False) as pipe:
            for *_, job_id in answered:
                pipe.hmget(keys.job(job_id), "created_at", "started_at", "finished_at")
            records = pipe.execute()
        spans: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for (due, sent, done, _), stamps in zip(answered, records, strict=True):
            if None in stamps:
                continue
            created, started, finished = (float(stamp) for stamp in stamps)
            for stage, span in zip(STAGES, (sent - due, created - sent, started - created, finished - started,
                                           done - finished), strict=True):
                spans[stage].append(span)
        return {stage: {"p50_ms": _percentile(sorted(values), 0.5) * 1000,
                        "p99_ms": _percentile(sorted(values), 0.99) * 1000} for stage, values in spans.items()}


#: The stages of :meth:`OpenLoop.stages`, in order.
STAGES = ("sender", "API to admitted", "queued to started", "batch run", "reply")


def _job_id(body: bytes) -> str | None:
    try:
        job_id = json.loads(body).get("job_id")
    except (ValueError, AttributeError):
        return None
    return job_id if isinstance(job_id, str) else None


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(share * len(values)))]
