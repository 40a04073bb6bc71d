"""HTTP to the service, with the retries that let a long run ride out a busy or restarting service.

One keep-alive connection per thread (``http.client`` from the standard library: a run sends a few
large requests, so a pooled third-party client would buy nothing). A ``503`` or ``429`` is asked
again after its ``Retry-After``, growing with each refusal; a dropped or refused connection is tried
again with the same backoff. Both give up after ``patience_s`` without a good answer, as
:class:`Unreachable`. A POST retried after its connection dropped mid-answer may have been taken
the first time: one sent with an ``Idempotency-Key`` (as ``inferq score`` sends each chunk) is then
answered the job the first send made; one without makes a second job.
"""

from __future__ import annotations

import dataclasses
import http.client
import random
import threading
import time
from collections.abc import Callable
from email.message import Message
from urllib.parse import urlsplit

import orjson

from inferq.client.errors import HttpError, Interrupted, Unreachable

#: Statuses that mean "not now": the queue is full, the broker is down, a proxy lost the service.
RETRY_STATUSES = frozenset({429, 502, 503})
#: The header that makes a POST safe to send again (the IETF httpapi draft's); a request that carries
#: it is also retried on the 409 that says its first send is still being admitted.
IDEMPOTENCY_KEY = "Idempotency-Key"
IN_FLIGHT = "idempotency_key_in_flight"


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    patience_s: float = 300.0
    backoff_s: float = 0.1
    max_backoff_s: float = 10.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        # Jitter keeps clients refused together from coming back together.
        grown = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return max(retry_after or 0.0, grown) + random.uniform(0, self.backoff_s)


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> dict:
        return orjson.loads(self.body)


class Transport:
    def __init__(self, url: str, api_key: str | None = None, *, timeout_s: float = 60.0,
                 retry: RetryPolicy | None = None, on_retry: Callable[[str], None] | None = None) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.headers = {"User-Agent": "inferq-client"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        #: Set to make every wait and retry in every thread give up at once (Ctrl-C).
        self.stop = threading.Event()
        self._local = threading.local()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """The first answer that is not a retryable refusal; an error status raises :class:`HttpError`."""
        target = path if path.startswith(f"{self.prefix}/") else f"{self.prefix}{path}"
        first_failure: float | None = None
        attempt = 0
        while True:
            retry_after, problem = None, ""
            try:
                response = self._send(method, target, body, {**self.headers, **(headers or {})})
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status not in RETRY_STATUSES and not _in_flight(response, headers):
                    if response.status >= 400:
                        raise _http_error(method, path, response)
                    return response
                retry_after = _seconds(response.headers.get("Retry-After"))
                problem = str(_http_error(method, path, response))
            now = time.monotonic()
            first_failure = first_failure if first_failure is not None else now
            delay = self.retry.delay(attempt, retry_after)
            if now + delay - first_failure > self.retry.patience_s:
                raise Unreachable(f"{method} {self._url(target)}: {problem}; gave up after {attempt + 1} tries "
                                  f"in {now - first_failure:.0f} s")
            if self.on_retry:
                self.on_retry(problem)
            self.pause(delay)
            attempt += 1

    def pause(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Interrupted("stopped while waiting")

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        if self.stop.is_set():
            raise Interrupted("stopped")
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            connection = self._local.connection = kind(self.host, self.port, timeout=self.timeout_s)
        connection.request(method, path, body, headers)
        answer = connection.getresponse()
        return Response(answer.status, answer.headers, answer.read())

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _url(self, path: str) -> str:
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{self.host}{port}{path}"


def _http_error(method: str, path: str, response: Response) -> HttpError:
    try:
        body = response.json()
        message = body.get("error", "") if isinstance(body, dict) else ""
    except orjson.JSONDecodeError:
        body, message = None, ""
    return HttpError(method, path, response.status, message or response.body[:200].decode(errors="replace"), body)


def _in_flight(response: Response, headers: dict[str, str] | None) -> bool:
    """A 409 for a request whose Idempotency-Key an earlier send of it still holds (it is being
    admitted): asked again, it is answered that send's job."""
    if response.status != 409 or IDEMPOTENCY_KEY not in (headers or {}):
        return False
    try:
        body = response.json()
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and body.get("reason") == IN_FLIGHT


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: the backoff decides instead
        return None
