"""What can go wrong talking to inferq, as values a program can tell apart and a person can read.

Every error's ``str()`` is a sentence that says what happened and, where there is one, what to do.
"""

from __future__ import annotations


class ClientError(Exception):
    """The base of every error the client raises."""


class HttpError(ClientError):
    """The service answered with an error status; ``message`` is its own ``{"error": ...}``."""

    def __init__(self, method: str, path: str, status: int, message: str, body: object = None) -> None:
        super().__init__(f"{method} {path} answered {status}: {message}")
        self.status = status
        self.message = message
        self.body = body


class Unreachable(ClientError):
    """The service could not be reached, or kept refusing, for longer than the client's patience."""


class JobFailed(ClientError):
    """The service took the job but could not answer it (a model error, for instance)."""

    def __init__(self, job_id: str, error: str) -> None:
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error


class JobExpired(JobFailed):
    """The service took the job but its deadline passed before a worker ran it: final, like a
    failure (it will never be answered); send the images again for an answer."""

    def __init__(self, job_id: str, error: str) -> None:
        ClientError.__init__(self, f"job {job_id} expired before it ran: {error}")
        self.job_id = job_id
        self.error = error


class JobCancelled(JobFailed):
    """The job was cancelled (``Job.cancel``, ``DELETE /jobs/<id>``) before it was answered: final,
    without an answer; send the images again for one."""

    def __init__(self, job_id: str, error: str) -> None:
        ClientError.__init__(self, f"job {job_id} was cancelled: {error}")
        self.job_id = job_id
        self.error = error


class JobLost(ClientError):
    """The job is unknown to the service: never made, or expired (RESULT_TTL_S) before it was read."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} is unknown to the service (expired or never made)")
        self.job_id = job_id


class NotDone(ClientError):
    """The job's answer was asked for before it was ready; ``status`` is where it stands."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id} is {status}, not done: wait() for it")
        self.job_id = job_id
        self.status = status


class Interrupted(ClientError):
    """The client was told to stop (Ctrl-C) while it waited or retried."""
