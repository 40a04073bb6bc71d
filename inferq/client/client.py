"""``Client``: what a program calls to have inferq read its images."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from inferq.client import routes, uploads
from inferq.client.dataset import open_dataset
from inferq.client.errors import HttpError
from inferq.client.http import RetryPolicy, Transport
from inferq.client.job import Answer, Job, submit
from inferq.client.scoring import Chunk, score_chunks

#: The API's MAX_IMAGES_PER_REQUEST unless it was changed.
DEFAULT_MAX_IMAGES = 1024


class Client:
    """A client of one inferq service.

    Images may be paths, bytes of an image file, PIL images, uint8 numpy arrays (``[N, 28, 28]``,
    ``[N, 784]``, ``[28, 28]``) or bulk files (``.npy``, IDX), alone or in a list. ``model=None``
    asks the service's default model; a name asks ``/models/<name>/...``.
    """

    def __init__(self, url: str = "http://localhost:8080", api_key: str | None = None, *,
                 timeout_s: float = 60.0, retry: RetryPolicy | None = None,
                 max_images_per_request: int = DEFAULT_MAX_IMAGES,
                 on_retry: Callable[[str], None] | None = None) -> None:
        self.transport = Transport(url, api_key, timeout_s=timeout_s, retry=retry, on_retry=on_retry)
        self.max_images = max_images_per_request

    def recognize(self, images: object, *, model: str | None = None) -> list[Answer]:
        """Every image's answer, in order; waits for them. Many images go as several requests."""
        answers: list[Answer] = []
        for batch in uploads.batches(uploads.items(images), self.max_images):
            names = [name for item in batch for name in item.names()]
            body, content_type = uploads.multipart(batch)
            try:
                answer = self.transport.request("POST", routes.recognize(model), body,
                                                {"Content-Type": content_type}).json()
            except HttpError as exc:
                # 504: the service stopped waiting, the job goes on; collect it as an async one.
                if exc.status != 504 or not isinstance(exc.body, dict) or "job_id" not in exc.body:
                    raise
                answers += Job(self.transport, exc.body["job_id"], names=names).wait()
                continue
            results = answer.get("results", [answer])
            answers += [Answer.from_result(result, name) for result, name in zip(results, names, strict=True)]
        return answers

    def submit(self, images: object, *, model: str | None = None, callback: str | None = None) -> Job:
        """One asynchronous job of at most ``max_images_per_request`` images (``score`` takes more).
        ``callback``: a URL the service POSTs the job's final record to when it ends (one of its
        CALLBACK_ALLOWED_URLS; docs/callbacks.md)."""
        found = uploads.items(images)
        count = sum(item.count for item in found)
        if count > self.max_images:
            raise ValueError(f"{count} images in one job, more than the {self.max_images} a request may carry: "
                             f"use score() or recognize(), which split them")
        return self.submit_items(found, model, callback)

    def submit_items(self, batch: list[uploads.Item], model: str | None = None, callback: str | None = None, *,
                     idempotency_key: str | None = None) -> Job:
        """One job of ``batch``. With ``idempotency_key``, the service makes at most one job of every
        request that carries it (retries included): sending it again answers the same job."""
        return submit(self.transport, batch, model, callback, idempotency_key=idempotency_key)

    def job(self, job_id: str, location: str | None = None) -> Job:
        """A job submitted earlier, by its id (or its ``Location``)."""
        return Job(self.transport, job_id, location)

    def score(self, dataset: object, *, model: str | None = None, chunk: int = DEFAULT_MAX_IMAGES,
              concurrency: int = 4, callback: str | None = None) -> Iterator[Chunk]:
        """A whole data set's answers, as :class:`Chunk` s in input order.

        ``dataset``: an array, a path (``.npy``, IDX, a directory of images) or a list of image paths.
        At most ``concurrency`` chunks are in flight; a chunk whose job failed carries its error.
        ``callback``: as for :meth:`submit`, for each chunk's job.
        """
        return score_chunks(self.transport, open_dataset(dataset), model=model, chunk=min(chunk, self.max_images),
                            concurrency=concurrency, callback=callback)

    def stop(self) -> None:
        """Make every wait and retry in flight give up (:class:`~inferq.client.errors.Interrupted`).

        For good: threads left waiting must not start again. A program that goes on makes a new Client.
        """
        self.transport.stop.set()
