"""Hostile and odd input against the API under each of its HTTP servers with a real worker: a 4xx JSON
error or a correct answer every time, never a 5xx, and the service still answers afterwards.

Only what the HTTP server refuses before the app sees it is answered by the server itself, not with
the app's JSON: a head too large or not HTTP at all, 431, 414 or 400 (gunicorn with an HTML page,
granian with no body)."""

from __future__ import annotations

import contextlib
import functools
import http.client
import io
import json
import os
import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inferq.settings import API_SERVERS
from launcher.processes import free_port
from tests.conftest import png_bytes
from tests.support.models import build_model
from tests.support.processes import ApiProcess, WorkerProcess, worker_env

LABEL = 6




@pytest.fixture(scope="module")
def serving(redis_databases, tmp_path_factory):
    """A worker the APIs under test share, its settings and a folder for their logs."""
    tmp = tmp_path_factory.mktemp("hostile")
    build_model(tmp / "models", 1, label=LABEL)
    with redis_databases.lend() as url:
        env = worker_env(url, tmp / "models", "hostile")
        worker = WorkerProcess(env, tmp / "worker.log")
        worker.wait_serving()
        yield env, tmp
        worker.stop()


@pytest.fixture(scope="module", params=API_SERVERS)
def api(serving, request):
    env, tmp = serving
    server = ApiProcess(dict(env, API_SERVER=request.param), tmp / f"api-{request.param}.log", free_port())
    yield server
    assert server.stop() == 0


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def multipart(parts: list[tuple[str, str, bytes]], boundary: str = "hostile") -> bytes:
    body = b""
    for field, filename, data in parts:
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n").encode("utf-8", "surrogateescape") + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def png_header_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[6:22, 12:16] = 255
BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(f'<!ENTITY lol{i} "{"&lol{};".format(i - 1 if i > 1 else "") * 10}">'.encode()
                             for i in range(1, 10))
                  + b']><svg xmlns="http://www.w3.org/2000/svg">&lol9;</svg>')


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def image_cases() -> dict[str, tuple[bytes, str]]:
    """name -> (file content, what must happen: "answer" or an expected 4xx class)."""
    frames = [Image.fromarray(DIGIT).convert("P"), Image.fromarray(255 - DIGIT).convert("P")]
    return {
        "empty file": (b"", "4xx"),
        "truncated png": (_truncated(encoded(Image.fromarray(np.kron(255 - DIGIT, np.ones((8, 8), np.uint8))), "PNG")),
                          "4xx"),
        "random bytes": (os.urandom(4096), "4xx"),
        "decompression bomb": (png_header_claiming(100_000, 100_000), "4xx"),
        "huge dimensions": (encoded(Image.new("1", (20_000, 20_000)), "PNG"), "4xx"),
        "svg entity expansion": (BILLION_LAUGHS, "4xx"),
        "tiff": (encoded(Image.fromarray(DIGIT), "TIFF"), "4xx"),
        "16-bit png": (encoded(Image.fromarray(DIGIT.astype(np.uint16) * 257), "PNG"), "answer"),
        "cmyk jpeg": (encoded(Image.fromarray(DIGIT).convert("CMYK"), "JPEG"), "answer"),
        "palette png": (encoded(Image.fromarray(DIGIT).convert("P"), "PNG"), "answer"),
        "animated gif": (encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]), "answer"),
        "1x1 png": (encoded(Image.new("L", (1, 1), 255), "PNG"), "answer"),
        "bmp": (encoded(Image.fromarray(DIGIT), "BMP"), "answer"),
        "webp": (encoded(Image.fromarray(DIGIT), "WEBP", lossless=True), "answer"),
        "rgba on transparent": (encoded(Image.fromarray(DIGIT).convert("RGBA"), "PNG"), "answer"),
    }


def request(api, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    host, port = api.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    # The server may refuse a body before it is all sent; its answer is still there to read.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    # Header names in any case: granian sends them in lower case.
    return response.status, response.headers, response.read()


def assert_handled(status: int, headers: http.client.HTTPMessage, body: bytes, expect: str) -> None:
    assert status < 500, (status, body[:300])
    if expect == "either":
        expect = "answer" if status == 200 else "4xx"
    if expect == "answer":
        assert status == 200, (status, body[:300])
        assert json.loads(body)["labels"] == [LABEL]
    else:
        assert 400 <= status < 500, (status, body[:300])
        assert headers["Content-Type"] == "application/json" and "error" in json.loads(body)


@pytest.mark.parametrize("name", list(image_cases()))
def test_odd_images(api, name):
    data, expect = image_cases()[name]
    body = multipart([("image", "upload.bin", data)])
    assert_handled(*request(api, "POST", "/recognize", body, {"Content-Type": "multipart/form-data; boundary=hostile"}),
                   expect)


OK_PNG = png_bytes(DIGIT)
MULTIPART = {"Content-Type": "multipart/form-data; boundary=hostile"}


@pytest.mark.parametrize(("name", "method", "path", "body", "headers", "expect"), [
    ("30 MB upload", "POST", "/recognize", multipart([("image", "big.png", b"\0" * 30_000_000)]), MULTIPART, "4xx"),
    ("broken multipart", "POST", "/recognize", multipart([("image", "a.png", OK_PNG)])[:-30], MULTIPART, "4xx"),
    ("no boundary", "POST", "/recognize", multipart([("image", "a.png", OK_PNG)]),
     {"Content-Type": "multipart/form-data"}, "4xx"),
    ("thousands of parts", "POST", "/recognize", multipart([("image", f"{i}.png", OK_PNG) for i in range(3000)]),
     MULTIPART, "4xx"),
    ("path traversal filename", "POST", "/recognize", multipart([("image", "../../../etc/passwd", OK_PNG)]),
     MULTIPART, "answer"),
    ("unicode filename", "POST", "/recognize", multipart([("image", "数字 ✓ ﷽.png", OK_PNG)]), MULTIPART, "answer"),
    ("undecodable filename", "POST", "/recognize", multipart([("image", "\udcff\udcfe.png", OK_PNG)]), MULTIPART,
     "either"),
    ("very long filename", "POST", "/recognize", multipart([("image", "a" * 20_000, OK_PNG)]), MULTIPART, "answer"),
    ("wrong field name", "POST", "/recognize", multipart([("file", "a.png", OK_PNG)]), MULTIPART, "4xx"),
    ("json instead of multipart", "POST", "/recognize", b'{"image": "aGk="}', {"Content-Type": "application/json"},
     "4xx"),
    ("no content type", "POST", "/recognize", OK_PNG, {}, "4xx"),
    ("GET on a POST route", "GET", "/recognize", b"", {}, "4xx"),
    ("PUT on jobs", "PUT", "/jobs", b"", {}, "4xx"),
    ("unknown job id", "GET", "/jobs/3f2b8c1e-0000-4000-8000-000000000000", b"", {}, "4xx"),
    ("malformed job id", "GET", "/jobs/%00%ff'--", b"", {}, "4xx"),
    ("enormous job id", "GET", "/jobs/" + "x" * 8000, b"", {}, "4xx"),
    ("tensor of strings", "POST", "/v2/models/mnist/infer",
     json.dumps({"inputs": [{"name": "inputdata", "shape": [1, 784], "datatype": "FP32", "data": ["a"] * 784}]})
     .encode(),
     {"Content-Type": "application/json"}, "4xx"),
    ("deeply nested json", "POST", "/v1/models/mnist:predict",
     b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     {"Content-Type": "application/json"}, "4xx"),
])
def test_hostile_requests(api, name, method, path, body, headers, expect):
    assert_handled(*request(api, method, path, body, headers), expect)


def test_a_chunked_upload_without_content_length_is_answered(api):
    body = multipart([("image", "a.png", OK_PNG)])
    host, port = api.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(b"POST /recognize HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=hostile\r\n"
                    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status < 500, answer[:300]


def raw_exchange(api, head: bytes) -> bytes:
    """What the server answers to ``head``, sent as is, until it closes the connection."""
    host, port = api.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        # The server may answer and close before it has read all of a huge head.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            raw.sendall(head)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := raw.recv(65536):
                answer += chunk
    return answer


@pytest.mark.parametrize("head", [
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", id="a 1 MB header"),
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
                 + b"\r\n", id="200 headers"),
    pytest.param(b"GET /jobs/" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", id="a 100 kB request line"),
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)) + b"\r\n\r\n",
                 id="a TLS hello"),
])
def test_heads_the_server_refuses_are_a_4xx_from_the_server(api, head):
    answer = raw_exchange(api, head)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:300]


def test_clients_that_trickle_their_heads_hold_no_one_else_up_and_are_dropped(api):
    """Slowloris: connections that never finish their head take no thread from other clients, and
    the server closes them (both servers after 5 s)."""
    host, port = api.base_url.removeprefix("http://").split(":")
    slow = [socket.create_connection((host, int(port)), timeout=10) for _ in range(64)]
    try:
        for connection in slow:
            connection.sendall(b"POST /recognize HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        assert_handled(*request(api, "POST", "/recognize", multipart([("image", "a.png", OK_PNG)]), MULTIPART),
                       "answer")
        assert time.monotonic() - started < 20
        slow[0].settimeout(20)
        assert slow[0].recv(1) == b"", "the server kept a head that never ended"
    finally:
        for connection in slow:
            connection.close()


def test_the_service_still_answers_afterwards(api):
    status, _, body = request(api, "GET", "/healthz")
    assert status == 200
    assert_handled(*request(api, "POST", "/recognize", multipart([("image", "a.png", OK_PNG)]), MULTIPART), "answer")


# What one request may cost the API to decode: past MAX_REQUEST_PIXELS a 413 before anything is
# decoded, and within it the decoding holds up no other request of the process (under gevent, a
# greenlet that decoded froze every other one, and the reply listener, until it was done).
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
