"""A tiny stand-in for the inferq API, on a real socket, for the client's unit tests.

It speaks the API's job routes (``POST /jobs`` with its ``Idempotency-Key``, ``GET`` and ``DELETE
/jobs/<id>``, ``POST /recognize``, and the same under ``/models/<name>``) and can be told to
misbehave: refuse with 503, drop connections (before handling a request, or after: DROP_ANSWER),
hold jobs unanswered, fail jobs, answer jobs out of order. Image ``i`` of the tests' data sets has
pixels 0 and 1 set to ``i % 256`` and ``i // 256``, so the service knows which images it was sent;
its answer for an image is ``i % 10``.
"""

from __future__ import annotations

import collections
import email.parser
import email.policy
import io
import itertools
import re
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import orjson
from PIL import Image

DROP = "drop"
#: Handle the request, then drop the connection before answering (the service took it; the client
#: never heard).
DROP_ANSWER = "drop-answer"


def numbered_images(count: int) -> np.ndarray:
    """``[count, 28, 28]`` uint8 images that say which they are (see the module's docstring)."""
    images = np.zeros((count, 784), np.uint8)
    images[:, 0] = np.arange(count) % 256
    images[:, 1] = np.arange(count) // 256
    return images.reshape(count, 28, 28)


def image_ids(pixels: np.ndarray) -> list[int]:
    pixels = pixels.reshape(-1, 784).astype(np.int64)
    return [int(i) for i in pixels[:, 0] + 256 * pixels[:, 1]]


class FakeService:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Responses forced on the next requests, in turn: (status, headers, body) or DROP.
        self.script: collections.deque = collections.deque()
        #: Every POST: (path, image ids).
        self.posts: list[tuple[str, list[int]]] = []
        self.jobs: dict[str, dict] = {}
        self.requests = 0
        #: The query string of every poll.
        self.queries: list[str] = []
        self.authorization: str | None = None
        self.outstanding = 0
        self.max_outstanding = 0
        #: Cleared: jobs stay queued until it is set again.
        self.answering = threading.Event()
        self.answering.set()
        #: Image ids -> an error to fail their job with, or None.
        self.failure: Callable[[list[int]], str | None] = lambda ids: None
        #: The status a job given an error ends in: "failed", or "expired" (its deadline passed).
        self.failed_status = "failed"
        #: Image ids -> how many polls answer "queued" before "done".
        self.polls_before_done: Callable[[list[int]], int] = lambda ids: 0
        self._ids = itertools.count()
        #: Idempotency-Key -> the job it made, as the real service keeps them.
        self.keys: dict[str, str] = {}
        #: Every Idempotency-Key sent, in order, retries included.
        self.keys_sent: list[str] = []
        #: Job ids cancelled (DELETE /jobs/<id>).
        self.cancelled: list[str] = []
        #: Every POST's query parameters, beside ``posts``.
        self.post_queries: list[dict[str, list[str]]] = []

    def handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict, bytes] | str:
        with self.lock:
            self.requests += 1
            self.authorization = headers.get("Authorization")
            forced = self.script.popleft() if self.script else None
            if forced is not None and forced != DROP_ANSWER:
                return forced
        answer = self._handle(method, path, headers, body)
        return DROP if forced == DROP_ANSWER else answer

    def _handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict, bytes]:
        path, _, query = path.partition("?")
        key = headers.get("Idempotency-Key")
        if method == "POST" and key is not None:
            with self.lock:
                self.keys_sent.append(key)
                job_id = self.keys.get(key)
            if job_id is not None:
                return 202, {"Location": f"/jobs/{job_id}"}, orjson.dumps({"job_id": job_id, "status": "queued"})
        if method == "POST" and re.fullmatch(r"(/models/[^/]+)?/(jobs|recognize)", path):
            ids = image_ids(_decode(headers["Content-Type"], body))
            with self.lock:
                self.posts.append((path, ids))
                self.post_queries.append(urllib.parse.parse_qs(query))
                if path.endswith("/recognize"):
                    return 200, {}, orjson.dumps(_answer(ids) if len(ids) > 1 else _result(ids[0]))
                job_id = f"job-{next(self._ids)}"
                if key is not None:
                    self.keys[key] = job_id
                self.jobs[job_id] = {"ids": ids, "polls": self.polls_before_done(ids), "open": True}
                self.outstanding += 1
                self.max_outstanding = max(self.max_outstanding, self.outstanding)
            return 202, {"Location": f"/jobs/{job_id}"}, orjson.dumps({"job_id": job_id, "status": "queued"})
        # A service of before long polls: ?wait= is ignored.
        match = re.fullmatch(r"/jobs/([^/]+)", path)
        if method == "GET" and match:
            with self.lock:
                self.queries.append(query)
            return self._poll(match.group(1))
        if method == "DELETE" and match:
            return self._cancel(match.group(1))
        return 404, {}, orjson.dumps({"error": "no such route"})

    def _cancel(self, job_id: str) -> tuple[int, dict, bytes]:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return 404, {}, orjson.dumps({"error": f"no job {job_id}"})
            if not job["open"] and not job.get("cancelled"):
                return 409, {}, orjson.dumps({"error": f"job {job_id} is done"})
            if job["open"]:
                job["open"] = False
                self.outstanding -= 1
            job["cancelled"] = True
            self.cancelled.append(job_id)
        return 200, {}, orjson.dumps({"job_id": job_id, "status": "cancelled", "result": None, "error": "cancelled"})

    def _poll(self, job_id: str) -> tuple[int, dict, bytes]:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return 404, {}, orjson.dumps({"error": f"no job {job_id}"})
            if job.get("cancelled"):
                return 200, {}, orjson.dumps({"job_id": job_id, "status": "cancelled", "result": None,
                                              "error": "cancelled"})
            if not self.answering.is_set() or job["polls"] > 0:
                job["polls"] -= self.answering.is_set()
                return 200, {}, orjson.dumps({"job_id": job_id, "status": "queued", "result": None, "error": None})
            if job["open"]:
                job["open"] = False
                self.outstanding -= 1
            error = self.failure(job["ids"])
        if error is not None:
            return 200, {}, orjson.dumps({"job_id": job_id, "status": self.failed_status, "result": None,
                                          "error": error})
        return 200, {}, orjson.dumps({"job_id": job_id, "status": "done", "result": _answer(job["ids"]),
                                      "error": None})

    def posted_ids(self) -> list[int]:
        return [i for _, ids in self.posts for i in ids]


def _result(image_id: int) -> dict:
    probabilities = [0.0] * 10
    probabilities[image_id % 10] = 1.0
    return {"filename": f"server-name-{image_id}", "labels": [image_id % 10], "probabilities": probabilities,
            "model_version": 7}


def _answer(ids: list[int]) -> dict:
    return {"results": [_result(i) for i in ids]}


def _decode(content_type: str, body: bytes) -> np.ndarray:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    arrays = []
    for part in message.iter_parts():
        data = part.get_payload(decode=True)
        field = part.get_param("name", header="content-disposition")
        if field == "images":
            arrays.append(np.load(io.BytesIO(data), allow_pickle=False).reshape(-1, 784))
        else:
            arrays.append(np.asarray(Image.open(io.BytesIO(data)).convert("L")).reshape(1, 784))
    return np.concatenate(arrays)


def serve(service: FakeService) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_DELETE(self) -> None:
            self._answer("DELETE")

        def _answer(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer = service.handle(method, self.path, self.headers, body)
            if answer == DROP:
                self.close_connection = True
                return
            status, headers, payload = answer
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server
