"""The deliverer: a worker thread that POSTs ended jobs' records to their callbacks.

Each of its few threads claims one due delivery at a time (``inferq.callbacks.Deliveries``, leased so that a dead
deliverer's work comes due again, and never held by two), renders the job as ``GET /jobs/<id>``
shows it (``inferq.job_view``), signs it (Standard Webhooks) and POSTs it with CALLBACK_TIMEOUT_S
for the connection and the answer. No redirect is followed: a 3xx counts as a failure, since the
place it points to was not checked against CALLBACK_ALLOWED_URLS. A 2xx is delivered; anything
else is tried again after CALLBACK_BACKOFF_S, doubling, until CALLBACK_MAX_ATTEMPTS or
CALLBACK_MAX_AGE_S after the job ended, then marked failed. Workers deliver, not the API: they are
what stays up to drain the queues, and a deliverer per worker scales with them.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable

import orjson
import redis

from inferq import callbacks
from inferq.callbacks import DELIVERED, FAILED, PENDING, Deliveries
from inferq.job_view import job_view
from inferq.jobs import JobRecord, JobStore
from inferq.model_spec import ModelSpec
from inferq.settings import Settings

log = logging.getLogger(__name__)

#: Longest wait between looks at the due set while nothing is due.
IDLE_POLL_S = 1.0
#: Threads a worker process delivers with: a receiver slow to answer holds one of them, not all.
THREADS = 4
#: Seconds a stopping worker waits for the deliveries in flight.
STOP_WAIT_S = 5.0
#: Bytes of a receiver's answer read (for the error text), at most.
ANSWER_BYTES = 512


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> str | None:
    """POST ``body`` to ``url``: None if a 2xx answered, else what went wrong."""
    parts = urllib.parse.urlsplit(url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    connection = connection_type(parts.hostname, parts.port, timeout=timeout_s)
    try:
        connection.request("POST", path, body=body, headers={**headers, "user-agent": "inferq-callback"})
        response = connection.getresponse()
        answer = response.read(ANSWER_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    finally:
        connection.close()
    if 200 <= response.status < 300:
        return None
    if 300 <= response.status < 400:
        return f"HTTP {response.status}: redirects are not followed"
    return f"HTTP {response.status}: {answer.decode(errors='replace')[:200]}"


class CallbackDeliverer:
    def __init__(self, client: redis.Redis, store: JobStore, settings: Settings,
                 spec_of: Callable[[str], ModelSpec | None]) -> None:
        """``spec_of(model)``: the model as served now, for its class names in the record."""
        self._deliveries = Deliveries(client)
        self._store = store
        self._spec_of = spec_of
        self._key = callbacks.signing_key(settings.callback_secret) if settings.callback_secret else None
        self._timeout_s = settings.callback_timeout_s
        self._max_attempts = settings.callback_max_attempts
        self._max_age_s = settings.callback_max_age_s
        self._backoff_s = settings.callback_backoff_s
        # Connecting, sending and reading the answer each may take the timeout: the lease outlasts
        # all three, so that no other deliverer claims a job while this one may still be posting.
        self.lease_s = 3 * self._timeout_s + 5
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name=f"inferq-callbacks-{n}", daemon=True)
                         for n in range(THREADS)]

    def start(self) -> None:
        if self._key is None:  # callbacks are not enabled: none was admitted
            return
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        # A POST still in flight is not waited for long: its claim's lease ends, and another
        # deliverer sends it again.
        self._stop.set()
        deadline = time.monotonic() + STOP_WAIT_S
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivered = self.deliver_due()
                wait = 0.0 if delivered else self._idle_wait()
            except redis.RedisError as exc:
                log.warning("callback delivery: Redis out of reach: %s", exc)
                wait = IDLE_POLL_S
            except Exception:
                log.exception("callback delivery failed; it goes on")
                wait = IDLE_POLL_S
            if wait:
                self._stop.wait(wait)

    def _idle_wait(self) -> float:
        due = self._deliveries.next_due()
        if due is None:
            return IDLE_POLL_S
        return min(max(due - time.time(), 0.01), IDLE_POLL_S)

    def deliver_due(self) -> int:
        """Claim and deliver what is due, one at a time; answers how many were tried."""
        tried = 0
        while not self._stop.is_set():
            claimed = self._deliveries.claim(time.time(), self.lease_s)
            if not claimed:
                return tried
            for job_id, token in claimed:
                self._deliver(job_id, token)
                tried += 1
        return tried

    def _deliver(self, job_id: str, token: str) -> None:
        assert self._key is not None
        record = self._store.get(job_id)
        if record is None or record.callback is None:  # expired meanwhile, or never had one
            return
        body = self.body(record)
        error = post(record.callback.url, body, callbacks.signed_headers(self._key, job_id, int(time.time()), body),
                     self._timeout_s)
        if error is None:
            self._deliveries.record(job_id, token, DELIVERED)
            return
        attempts = record.callback.attempts + 1
        retry_at = time.time() + callbacks.backoff_s(attempts, self._backoff_s)
        past_age = retry_at > (record.finished_at or time.time()) + self._max_age_s
        if attempts >= self._max_attempts or past_age:
            log.warning("callback of job %s failed for good after %d attempts: %s", job_id, attempts, error)
            self._deliveries.record(job_id, token, FAILED, error=error)
        else:
            self._deliveries.record(job_id, token, PENDING, error=error, retry_at=retry_at)

    def body(self, record: JobRecord) -> bytes:
        """The job as ``GET /jobs/<id>`` shows it now."""
        spec = self._spec_of(record.model) if record.model is not None else None
        return orjson.dumps(job_view(record, spec), option=orjson.OPT_SERIALIZE_NUMPY)
