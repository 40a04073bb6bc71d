"""Interactive load at a fixed rate, open loop: latency counted from each request's scheduled send.

A closed-loop generator (wrk's N clients) sends the next request only when the last is answered, so
a slow system is sent less and its queueing never shows (coordinated omission), and N clients
that saturate the API measure the API, not what bulk work does to a person's request. Here requests
are due at a fixed rate whatever the answers, each sent by whichever sender thread is free, and
its latency runs from when it was due: a request that waits for a free sender counts that wait.
"""

from __future__ import annotations

import dataclasses
import http.client
import threading
import time
import urllib.parse
from pathlib import Path

from bench.bodies import BOUNDARY

#: Senders: enough that a few slow answers do not hold the schedule up at the rates used here.
SENDERS = 16


@dataclasses.dataclass
class OpenLoopResult:
    rate_per_s: float
    sent: int
    p50_ms: float
    p99_ms: float
    errors: int


class OpenLoop:
    """``with OpenLoop(url, rate, bodies) as load: ...; load.result()``: sync ``POST /recognize``
    of the one-image ``bodies`` (``bench.bodies.one_image_bodies``) at ``rate_per_s``."""

    def __init__(self, base_url: str, rate_per_s: float, bodies: list[Path], *, path: str = "/recognize",
                 headers: dict[str, str] | None = None, senders: int = SENDERS) -> None:
        self._address = urllib.parse.urlsplit(base_url)
        self._rate = rate_per_s
        self._bodies = [body.read_bytes() for body in bodies]
        self._path = path
        self._headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **(headers or {})}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self._started = 0.0
        self._latencies_s: list[float] = []
        self._errors = 0
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(senders)]

    def __enter__(self) -> OpenLoop:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _due(self) -> tuple[int, float]:
        with self._lock:
            index = self._next
            self._next += 1
        return index, self._started + index / self._rate

    def _send(self) -> None:
        connection = http.client.HTTPConnection(self._address.hostname, self._address.port, timeout=30)
        while True:
            index, due = self._due()
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            try:
                connection.request("POST", self._path, self._bodies[index % len(self._bodies)], self._headers)
                answer = connection.getresponse()
                answer.read()
                ok = answer.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(self._address.hostname, self._address.port, timeout=30)
                ok = False
            with self._lock:
                if ok:
                    self._latencies_s.append(time.monotonic() - due)
                else:
                    self._errors += 1

    def result(self) -> OpenLoopResult:
        with self._lock:
            latencies = sorted(self._latencies_s)
            errors = self._errors
        return OpenLoopResult(self._rate, len(latencies) + errors, _percentile(latencies, 0.5) * 1000,
                              _percentile(latencies, 0.99) * 1000, errors)


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(share * len(values)))]
