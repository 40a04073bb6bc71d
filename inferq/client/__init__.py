"""A Python client of inferq: ``Client(url).recognize(images)``, ``.submit(images)`` for a job to
collect later, ``.score(dataset)`` for a whole data set, and the ``inferq`` command. No TensorFlow."""

from inferq.client.client import Client
from inferq.client.errors import (
                                  ClientError,
                                  HttpError,
                                  Interrupted,
                                  JobExpired,
                                  JobFailed,
                                  JobLost,
                                  NotDone,
                                  Unreachable,
)
from inferq.client.http import RetryPolicy
from inferq.client.job import Answer, Job
from inferq.client.run import Summary, score_file
from inferq.client.scoring import Chunk

__all__ = ["Answer", "Chunk", "Client", "ClientError", "HttpError", "Interrupted", "Job", "JobExpired",
           "JobFailed", "JobLost", "NotDone", "RetryPolicy", "Summary", "Unreachable", "score_file"]
