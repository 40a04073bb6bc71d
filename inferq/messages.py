"""What the API and the workers say to each other: the Celery task, its message, a result's shape.

A message carries one or more jobs (a job is one request's images): the API puts the jobs of
requests that arrive together into one message, because the broker's per-message path, not the
model, is what limits a worker. Images travel decoded, as 28x28 8-bit grayscale pixels, white on
black: the base64 of the raw bytes of all of a job's images together, one decode per job on the
worker and a fraction of the size of JSON numbers. Only JSON goes over the wire.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Sequence
from typing import TypedDict

from inferq.model_contract import N_INPUT
from inferq.priorities import INTERACTIVE, PRIORITIES

#: The task's name on the wire. Kept from the first release, when the task was named for the route:
#: a worker discards a message of a task it does not know, so a new name would lose the messages
#: queued across an upgrade.
TASK_NAME = "inferq.recognize"

#: Message header with the number of images a message carries, so the batcher can count a
#: batch's images without decoding bodies.
IMAGES_HEADER = "inferq_images"

FORMAT_VERSION = 1


class MessageError(ValueError):
    """A message body that is not a list of jobs as :func:`encode` writes them."""


@dataclasses.dataclass(frozen=True)
class JobInput:
    job_id: str
    #: ``count * 784`` bytes, image after image.
    pixels: bytes
    #: The API process waiting for this job's outcome (``inferq.keys.replies``), if one is.
    reply_to: str | None
    priority: str = INTERACTIVE
    #: Unix time past which the job is not worth running (its client has given up), if any.
    deadline: float | None = None
    #: Unix time the job was queued at, for the queue-wait metric.
    queued_at: float | None = None

    @property
    def count(self) -> int:
        return len(self.pixels) // N_INPUT


class ImageResult(TypedDict):
    """What a worker answers for one image."""

    label: int
    #: Softmax over the classes; absent for a model without probabilities (the original Go server's).
    probabilities: list[float] | None
    model_version: int


def encode(jobs: Sequence[JobInput]) -> dict:
    return {
        "v": FORMAT_VERSION,
        "jobs": [
            {"id": job.job_id, "pixels": base64.b64encode(job.pixels).decode("ascii"), "reply_to": job.reply_to,
             "priority": job.priority, "deadline": job.deadline, "queued_at": job.queued_at}
            for job in jobs
        ],
    }


def image_count(jobs: Sequence[JobInput]) -> int:
    return sum(job.count for job in jobs)


def decode(body: object) -> list[JobInput]:
    if not isinstance(body, dict) or body.get("v") != FORMAT_VERSION or not isinstance(body.get("jobs"), list):
        raise MessageError(f"not an inferq v{FORMAT_VERSION} message")
    jobs = []
    for raw in body["jobs"]:
        try:
            reply_to, deadline, queued_at = raw["reply_to"], raw.get("deadline"), raw.get("queued_at")
            # binascii validates in C; base64.b64decode(validate=True) runs a regex over every byte.
            job = JobInput(str(raw["id"]), binascii.a2b_base64(raw["pixels"], strict_mode=True),
                           None if reply_to is None else str(reply_to),
                           # Messages queued before priorities existed are the interactive kind.
                           raw.get("priority", INTERACTIVE),
                           None if deadline is None else float(deadline),
                           None if queued_at is None else float(queued_at))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise MessageError(f"malformed job in message: {exc!r}") from None
        if job.priority not in PRIORITIES:
            raise MessageError(f"job {job.job_id}: no priority {job.priority!r}")
        if not job.pixels or len(job.pixels) % N_INPUT:
            raise MessageError(f"job {job.job_id}: {len(job.pixels)} bytes is not a whole number of images")
        jobs.append(job)
    return jobs
