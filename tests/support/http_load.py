"""Load on a running API over HTTP: threads posting one-image requests, sync and async, until stopped,
remembering every answer."""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import time
from urllib.parse import urlsplit

BOUNDARY = "inferqtestboundary"
#: How long a refused client waits before its next request: less than the Retry-After it was given,
#: so that the load keeps probing while the service is refusing.
BACKOFF_S = 0.1


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


class HttpLoad:
    def __init__(self, base_url: str, image: bytes, *, sync_threads: int = 2, async_threads: int = 2,
                 timeout_s: float = 60.0) -> None:
        self._address = urlsplit(base_url)
        self._body = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="digit.png"\r\n'
                      "Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()
        self._timeout_s = timeout_s
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        kinds = ["sync"] * sync_threads + ["async"] * async_threads
        self._threads = [threading.Thread(target=self._post, args=(kind,), daemon=True) for kind in kinds]

    def __enter__(self) -> HttpLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self._timeout_s + 5)

    def count(self, kind: str, status: int) -> int:
        with self._lock:
            return sum(answer.kind == kind and answer.status == status for answer in self.answers)

    def accepted_job_ids(self) -> list[str]:
        with self._lock:
            return [answer.body["job_id"] for answer in self.answers if answer.kind == "async" and answer.status == 202]

    def _post(self, kind: str) -> None:
        path = "/recognize" if kind == "sync" else "/jobs"
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            if connection is None:
                connection = http.client.HTTPConnection(self._address.hostname, self._address.port,
                                                        timeout=self._timeout_s)
            try:
                connection.request("POST", path, body=self._body,
                                   headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
                response = connection.getresponse()
                raw = response.read()
                answer = Answer(kind, response.status, time.monotonic(), response.getheader("Retry-After"),
                                json.loads(raw) if raw else None)
            except (OSError, http.client.HTTPException, ValueError):
                connection.close()
                connection = None
                answer = Answer(kind, 0, time.monotonic(), None, None)
            with self._lock:
                self.answers.append(answer)
            if answer.status not in (200, 202):
                self._stop.wait(BACKOFF_S)
