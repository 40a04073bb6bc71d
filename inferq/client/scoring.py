"""A data set scored in chunks: each chunk one bulk job, a few in flight, answers in input order."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from inferq.client.errors import HttpError, JobCancelled, JobFailed, JobLost
from inferq.client.http import Transport
from inferq.client.job import Answer, Job, submit
from inferq.client.pipeline import ordered

if TYPE_CHECKING:
    from inferq.client.dataset import Dataset

#: The service refused the chunk's content itself: sending it again would be refused again.
CHUNK_REFUSALS = frozenset({400, 413, 415, 422})


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Images ``start .. start + len(names)`` of the data set: their answers, or why there are none."""

    index: int
    start: int
    names: list[str]
    answers: list[Answer] | None = None
    error: str | None = None

    @property
    def stop(self) -> int:
        return self.start + len(self.names)

    @property
    def labels(self) -> np.ndarray:
        """Each image's label; -1 for images whose chunk failed."""
        if self.answers is None:
            return np.full(len(self.names), -1, np.int64)
        return np.array([answer.label for answer in self.answers], np.int64)


def score_chunks(transport: Transport, dataset: Dataset, *, model: str | None, chunk: int, concurrency: int,
                 first_chunk: int = 0, known_jobs: dict[int, str] | None = None,
                 on_submit: Callable[[int, str], None] | None = None,
                 callback: str | None = None, run_id: str | None = None) -> Iterator[Chunk]:
    """Chunks ``first_chunk ..`` of ``dataset``, in order.

    Each chunk is sent with the Idempotency-Key ``<run_id>-<index>`` (``run_id``: a new one when
    None), so that however often it is sent (the transport's retries, a resumed run with the same
    ``run_id``) the service makes one job of it.
    ``known_jobs`` maps chunk indexes to jobs submitted by an earlier run (their ``Location``): those
    are collected rather than sent again. ``on_submit(index, location)`` is told of each new job
    before it is waited for, so that a run stopped meanwhile can collect it later. ``callback``: the
    URL each new job's final record is POSTed to.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 image, not {chunk}")
    known = dict(known_jobs or {})
    run_id = run_id or uuid.uuid4().hex

    def task(index: int) -> Callable[[], Chunk]:
        start = index * chunk
        stop = min(start + chunk, len(dataset))
        names = dataset.names(start, stop)

        def run() -> Chunk:
            location = known.pop(index, None)
            if location is not None:
                try:
                    return Chunk(index, start, names, Job.at(transport, location, names).wait())
                except (JobLost, JobCancelled):
                    pass  # expired, never made, or cancelled: send it again
                except JobFailed as exc:
                    return Chunk(index, start, names, error=exc.error)
            try:
                job = submit(transport, dataset.items(start, stop), model, callback,
                             idempotency_key=f"{run_id}-{index}")
            except HttpError as exc:
                if exc.status in CHUNK_REFUSALS:
                    return Chunk(index, start, names, error=f"refused ({exc.status}): {exc.message}")
                raise
            if on_submit is not None:
                on_submit(index, job.location)
            try:
                return Chunk(index, start, names, job.wait())
            except JobFailed as exc:
                return Chunk(index, start, names, error=exc.error)

        return run

    chunks = -(-len(dataset) // chunk)
    return ordered((task(index) for index in range(first_chunk, chunks)), concurrency)
