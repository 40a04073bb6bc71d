"""Load on a running API over HTTP: threads posting requests, sync and async, until stopped (or each
has sent its share), remembering every answer.

By default every request is the one ``image`` in field ``image``; ``uploads`` gives each kind its own
list of multipart bodies instead, sent in turn, and each answer says which it answered (``upload``).
"""

from __future__ import annotations

import dataclasses
import http.client
import itertools
import json
import threading
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

BOUNDARY = "inferqtestboundary"
#: How long a refused client waits before its next request: less than the Retry-After it was given,
#: so that the load keeps probing while the service is refusing.
BACKOFF_S = 0.1

#: One multipart part: field name, filename, content.
Part = tuple[str, str, bytes]


def multipart_body(parts: Sequence[Part], boundary: str = BOUNDARY) -> bytes:
    body = b""
    for field, filename, data in parts:
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                 f"Content-Type: {'image/png' if filename.endswith('.png') else 'application/octet-stream'}\r\n\r\n"
                 ).encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


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


class HttpLoad:
    def __init__(self, base_url: str, image: bytes | None = None, *, sync_threads: int = 2, async_threads: int = 2,
                 timeout_s: float = 60.0, uploads: Mapping[str, Sequence[Sequence[Part]]] | None = None,
                 pause_s: Mapping[str, float] | None = None, max_requests: Mapping[str, int] | None = None) -> None:
        self._address = urlsplit(base_url)
        if uploads is None:
            assert image is not None, "give an image or uploads"
            uploads = {kind: [[("image", "digit.png", image)]] for kind in ("sync", "async")}
        self._bodies = {kind: [multipart_body(parts) for parts in bodies] for kind, bodies in uploads.items()}
        self._pause_s = dict(pause_s or {})
        self._timeout_s = timeout_s
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Shared by a kind's threads: which upload is next, and how many requests are left to send.
        self._turns = {kind: itertools.count() for kind in ("sync", "async")}
        self._max_requests = dict(max_requests or {})
        kinds = ["sync"] * sync_threads + ["async"] * async_threads
        self._threads = [threading.Thread(target=self._post, args=(kind,), daemon=True) for kind in kinds]

    def __enter__(self) -> HttpLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self._timeout_s + 5)

    def count(self, kind: str, status: int) -> int:
        with self._lock:
            return sum(answer.kind == kind and answer.status == status for answer in self.answers)

    def accepted_job_ids(self) -> list[str]:
        with self._lock:
            return [answer.body["job_id"] for answer in self.answers if answer.kind == "async" and answer.status == 202]

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def _next_turn(self, kind: str) -> int | None:
        with self._lock:
            turn = next(self._turns[kind])
        limit = self._max_requests.get(kind)
        return None if limit is not None and turn >= limit else turn

    def _post(self, kind: str) -> None:
        path = "/recognize" if kind == "sync" else "/jobs"
        bodies = self._bodies[kind]
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and (turn := self._next_turn(kind)) is not None:
            upload = turn % len(bodies)
            if connection is None:
                connection = http.client.HTTPConnection(self._address.hostname, self._address.port,
                                                        timeout=self._timeout_s)
            sent = time.monotonic()
            try:
                connection.request("POST", path, body=bodies[upload],
                                   headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
                response = connection.getresponse()
                raw = response.read()
                answer = Answer(kind, response.status, time.monotonic(), response.getheader("Retry-After"),
                                json.loads(raw) if raw else None, upload, sent)
            except (OSError, http.client.HTTPException, ValueError):
                connection.close()
                connection = None
                answer = Answer(kind, 0, time.monotonic(), None, None, upload, sent)
            with self._lock:
                self.answers.append(answer)
            if answer.status not in (200, 202):
                self._stop.wait(BACKOFF_S)
            elif self._pause_s.get(kind):
                self._stop.wait(self._pause_s[kind])
