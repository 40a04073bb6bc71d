"""Load on a running API over HTTP: threads posting requests, sync and async, until stopped (or each
has sent its share), remembering every answer.

By default every request is the one ``image`` in field ``image``; ``uploads`` gives each kind its own
list of multipart bodies instead, sent in turn, and each answer says which it answered (``upload``).
The threads, their turns and connections are the benchmarks' load generator (``bench.load``), the
bodies theirs too (``bench.bodies.multipart``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

from bench.bodies import multipart
from bench.load import Poster, ThreadedLoad

#: How long a refused client waits before its next request: less than the Retry-After it was given,
#: so that the load keeps probing while the service is refusing.
BACKOFF_S = 0.1

#: One multipart part: field name, filename, content.
Part = tuple[str, str, bytes]


@dataclasses.dataclass(frozen=True)
class Answer:
    #: "sync" (POST /recognize) or "async" (POST /jobs).
    kind: str
    #: The HTTP status; 0 when no answer came (the connection failed).
    status: int
    #: When it came, by time.monotonic().
    at: float
    retry_after: str | None
    body: dict | None
    #: Which of its kind's uploads it answered (0 for the single image).
    upload: int = 0
    #: When the request was sent, by time.monotonic().
    sent: float = 0.0


PATHS = {"sync": "/recognize", "async": "/jobs"}


class HttpLoad(ThreadedLoad):
    def __init__(self, base_url: str, image: bytes | None = None, *, sync_threads: int = 2, async_threads: int = 2,
                 timeout_s: float = 60.0, uploads: Mapping[str, Sequence[Sequence[Part]]] | None = None,
                 pause_s: Mapping[str, float] | None = None, max_requests: Mapping[str, int] | None = None) -> None:
        super().__init__(["sync"] * sync_threads + ["async"] * async_threads, base_url, timeout_s=timeout_s,
                         limits=max_requests, join_s=timeout_s + 5)
        if uploads is None:
            assert image is not None, "give an image or uploads"
            uploads = {kind: [[("image", "digit.png", image)]] for kind in PATHS}
        self._bodies = {kind: [multipart(parts) for parts in bodies] for kind, bodies in uploads.items()}
        self._pause_s = dict(pause_s or {})
        self.answers: list[Answer] = []

    def count(self, kind: str, status: int) -> int:
        with self.lock:
            return sum(answer.kind == kind and answer.status == status for answer in self.answers)

    def accepted_job_ids(self) -> list[str]:
        with self.lock:
            return [answer.body["job_id"] for answer in self.answers if answer.kind == "async" and answer.status == 202]

    def snapshot(self) -> list[Answer]:
        with self.lock:
            return list(self.answers)

    def send(self, kind: str, turn: int, poster: Poster) -> None:
        bodies = self._bodies[kind]
        upload = turn % len(bodies)
        reply = poster.post(PATHS[kind], bodies[upload])
        try:
            body = json.loads(reply.body) if reply.body else None
            answer = Answer(kind, reply.status, reply.at, reply.headers.get("Retry-After"), body, upload, reply.sent)
        except ValueError:
            poster.reset()
            answer = Answer(kind, 0, reply.at, None, None, upload, reply.sent)
        with self.lock:
            self.answers.append(answer)
        if answer.status not in (200, 202):
            self.stopping.wait(BACKOFF_S)
        elif self._pause_s.get(kind):
            self.stopping.wait(self._pause_s[kind])
