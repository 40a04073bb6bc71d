"""What one request may cost the API to decode, under each of its HTTP servers with a real worker:
past MAX_REQUEST_PIXELS a 413 before anything is decoded, and within it the decoding holds up no
other request of the process (under gevent, a greenlet that decoded froze every other one, and the
reply listener, until it was done)."""

from __future__ import annotations

import functools
import http.client
import io
import json
import socket
import threading

import pytest
from PIL import Image, ImageDraw

from inferq.settings import API_SERVERS
from launcher.processes import free_port
from tests.conftest import png_bytes
from tests.integration.test_hostile import DIGIT, LABEL, MULTIPART, assert_handled, multipart, request
from tests.support.models import build_model
from tests.support.processes import ApiProcess, WorkerProcess, worker_env

SIDE = 4096
#: Honest answers that must come while the large upload is decoded. Under the frozen hub none came
#: after its body was sent (at most one already on its way); within the budget the decoding takes
#: seconds here, and an honest answer a few milliseconds.
HONEST_WHILE_DECODING = 5


@functools.cache
def large_png() -> bytes:
    """A 4096x4096 PNG of a white block on black: 23 KB, and all of its pixels ink to crop and scale."""
    image = Image.new("L", (SIDE, SIDE), 0)
    ImageDraw.Draw(image).rectangle((1000, 500, 3000, 3500), fill=255)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def serving(redis_databases, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("budget")
    build_model(tmp / "models", 1, label=LABEL)
    with redis_databases.lend() as url:
        env = worker_env(url, tmp / "models", "budget")
        worker = WorkerProcess(env, tmp / "worker.log")
        worker.wait_serving()
        yield env, tmp
        worker.stop()


@pytest.fixture(scope="module", params=API_SERVERS)
def api(serving, request):
    env, tmp = serving
    # One process: the honest requests and the large one share it, as they would its event loop.
    server = ApiProcess(dict(env, API_SERVER=request.param), tmp / f"api-{request.param}.log", free_port())
    yield server
    assert server.stop() == 0


def test_a_thousand_large_images_in_16_mb_are_a_413_before_any_is_decoded(api):
    body = multipart([("image", f"{i}.png", large_png()) for i in range(680)])
    status, headers, answer = request(api, "POST", "/jobs", body, MULTIPART)
    assert status == 413, answer[:300]
    error = json.loads(answer)["error"]
    assert "image 4 ('4.png') brings the request's images to 83886080 pixels" in error
    assert "MAX_REQUEST_PIXELS" in error
    assert_handled(*request(api, "POST", "/recognize", multipart([("image", "a.png", png_bytes(DIGIT))]), MULTIPART),
                   "answer")


def test_honest_requests_are_answered_while_a_large_upload_is_decoded(api):
    large = multipart([("image", f"{i}.png", large_png()) for i in range(4)])  # the default budget's worth
    host, port = api.base_url.removeprefix("http://").split(":")
    sent, done = threading.Event(), threading.Event()
    answers: list[bytes] = []

    def upload() -> None:
        with socket.create_connection((host, int(port)), timeout=120) as raw:
            raw.sendall(f"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART['Content-Type']}\r\n"
                        f"Content-Length: {len(large)}\r\nConnection: close\r\n\r\n".encode() + large)
            sent.set()
            answer = b""
            while chunk := raw.recv(65536):
                answer += chunk
        answers.append(answer)
        done.set()

    uploader = threading.Thread(target=upload)
    uploader.start()
    honest = multipart([("image", "a.png", png_bytes(DIGIT))])
    answered_meanwhile = 0
    assert sent.wait(60)
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    while not done.is_set():
        connection.request("POST", "/recognize", body=honest, headers=MULTIPART)
        response = connection.getresponse()
        status, body = response.status, response.read()
        assert status == 200 and json.loads(body)["labels"] == [LABEL], (status, body[:300])
        answered_meanwhile += not done.is_set()
    uploader.join(120)
    assert answers and answers[0].startswith(b"HTTP/1.1 202"), answers[0][:300] if answers else None
    assert answered_meanwhile >= HONEST_WHILE_DECODING
