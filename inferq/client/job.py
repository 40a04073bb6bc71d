"""A job the service has taken: its status, and its answers once done."""

from __future__ import annotations

import dataclasses
import time

from inferq.client import routes, uploads
from inferq.client.errors import HttpError, JobCancelled, JobExpired, JobFailed, JobLost, NotDone
from inferq.client.http import IDEMPOTENCY_KEY, Transport

#: A job's statuses as the service reports them (the client's copy: it imports nothing of the
#: server's; tests/client holds it equal to ``inferq.jobs``).
QUEUED, RUNNING, DONE, FAILED, EXPIRED = "queued", "running", "done", "failed", "expired"
#: A job cancelled (:meth:`Job.cancel`, ``DELETE /jobs/<id>``): it has no answer.
CANCELLED = "cancelled"
#: The statuses a job ends in: polling stops at any of them.
FINAL = (DONE, FAILED, EXPIRED, CANCELLED)
#: Polling starts fast (a small job is answered in milliseconds) and slows to this.
MAX_POLL_INTERVAL_S = 0.25
#: How long each poll asks the service to hold it until the job ends (``GET /jobs/<id>?wait=``): one
#: round trip a job instead of one a quarter second. A service that does not hold polls answers at
#: once, and polling goes on at intervals. Short enough that a stop (Ctrl-C) is not kept waiting.
POLL_WAIT_S = 5.0


@dataclasses.dataclass(frozen=True)
class Answer:
    """The model's answer for one image, named as the client named the image."""

    filename: str
    label: int
    probabilities: list[float]
    model_version: int | None

    @classmethod
    def from_result(cls, result: dict, filename: str | None = None) -> Answer:
        return cls(filename if filename is not None else result.get("filename", ""), int(result["labels"][0]),
                   result["probabilities"], result.get("model_version"))

    def to_dict(self) -> dict:
        """The API's own shape: ``{"filename", "labels": [d], "probabilities", "model_version"}``."""
        return {"filename": self.filename, "labels": [self.label], "probabilities": self.probabilities,
                "model_version": self.model_version}


class Job:
    def __init__(self, transport: Transport, job_id: str, location: str | None = None,
                 names: list[str] | None = None) -> None:
        self.transport = transport
        self.job_id = job_id
        self.location = routes.job(job_id, location)
        #: The client's names for the job's images, in order; the service's filenames when None.
        self.names = names

    @classmethod
    def at(cls, transport: Transport, location: str, names: list[str] | None = None) -> Job:
        """The job whose record is at ``location`` (``/jobs/<id>``)."""
        return cls(transport, location.rstrip("/").rsplit("/", 1)[-1], location, names)

    def __repr__(self) -> str:
        return f"Job({self.job_id!r})"

    def status(self, wait_s: float = 0) -> dict:
        """The service's record: ``{"job_id", "status", "images", ..., "result", "error"}``; once the
        job has ended, or after ``wait_s`` (if the service holds polls)."""
        path = f"{self.location}?wait={wait_s:.3f}" if wait_s > 0 else self.location
        try:
            return self.transport.request("GET", path).json()
        except HttpError as exc:
            if exc.status == 404:
                raise JobLost(self.job_id) from None
            raise

    def cancel(self) -> bool:
        """Cancel the job: if it is queued it is never run, if it is running its answer is discarded.
        True if it is cancelled now (or was already), False if it had ended otherwise (done, failed,
        expired): its outcome stands. :class:`JobLost` for a job the service does not know."""
        try:
            self.transport.request("DELETE", self.location)
        except HttpError as exc:
            if exc.status == 404:
                raise JobLost(self.job_id) from None
            if exc.status == 409:
                return False
            raise
        return True

    def result(self) -> list[Answer]:
        """The answers, in upload order; :class:`NotDone` if the job is not finished yet."""
        return self._answers(self.status())

    def wait(self, timeout_s: float | None = None) -> list[Answer]:
        """The answers once the job is done; :class:`JobFailed` if it failed (:class:`JobExpired` if its
        deadline passed before it ran, :class:`JobCancelled` if it was cancelled), :class:`NotDone` at
        the timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        interval = 0.005
        while True:
            hold = POLL_WAIT_S if deadline is None else min(POLL_WAIT_S, max(0.0, deadline - time.monotonic()))
            asked = time.monotonic()
            record = self.status(hold)
            if record["status"] in FINAL:
                return self._answers(record)
            if deadline is not None and time.monotonic() + interval > deadline:
                raise NotDone(self.job_id, record["status"])
            if time.monotonic() - asked < hold:  # answered before the job ended: this service does not hold polls
                self.transport.pause(interval)
                interval = min(MAX_POLL_INTERVAL_S, interval * 1.5)

    def _answers(self, record: dict) -> list[Answer]:
        if record["status"] == CANCELLED:
            raise JobCancelled(self.job_id, record.get("error") or "cancelled")
        if record["status"] == EXPIRED:
            raise JobExpired(self.job_id, record.get("error") or "no reason given")
        if record["status"] == FAILED:
            raise JobFailed(self.job_id, record.get("error") or "no reason given")
        if record["status"] != DONE:
            raise NotDone(self.job_id, record["status"])
        results = record["result"]["results"]
        names = self.names if self.names is not None and len(self.names) == len(results) else [None] * len(results)
        return [Answer.from_result(result, name) for result, name in zip(results, names, strict=True)]


def submit(transport: Transport, batch: list[uploads.Item], model: str | None = None, callback: str | None = None,
           *, idempotency_key: str | None = None) -> Job:
    """One job of ``batch``. With ``idempotency_key``, the service makes at most one job of every
    request that carries it (retries included): sending it again answers the same job."""
    body, content_type = uploads.multipart(batch)
    headers = {"Content-Type": content_type}
    if idempotency_key is not None:
        headers[IDEMPOTENCY_KEY] = f'"{idempotency_key}"'
    answer = transport.request("POST", routes.jobs(model, callback), body, headers)
    return Job(transport, answer.json()["job_id"], answer.headers.get("Location"),
               [name for item in batch for name in item.names()])
