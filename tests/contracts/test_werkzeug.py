"""api/images/upload_request.py overrides a werkzeug hook that is private by name: this fails, naming it,
when werkzeug changes it."""

from __future__ import annotations

import importlib.metadata
import inspect
import io

from flask import Flask, Request, request

from api.images.upload_request import TESTED_WERKZEUG, WERKZEUG_INTERNALS, UploadRequest
from bench.bodies import BOUNDARY, multipart

INSTALLED = importlib.metadata.version("werkzeug")
RECHECK = (f"api/images/upload_request.py was written for werkzeug {', '.join(TESTED_WERKZEUG)} and relies on "
           f"{'; '.join(WERKZEUG_INTERNALS)}; werkzeug {INSTALLED} is installed: re-check it, then extend "
           "TESTED_WERKZEUG")
#: Past werkzeug's 500 KB, where its own hook spools the part to a temporary file.
LARGE = 600 * 1024


def test_the_installed_werkzeug_is_one_the_seam_was_written_for():
    assert INSTALLED in TESTED_WERKZEUG, RECHECK


def test_the_hook_takes_the_arguments_werkzeug_passes():
    assert (list(inspect.signature(Request._get_file_stream).parameters)
            == list(inspect.signature(UploadRequest._get_file_stream).parameters)
            == ["self", "total_content_length", "content_type", "filename", "content_length"]), RECHECK


def _parsed(request_class: type[Request], data: bytes) -> tuple[object, bytes]:
    app = Flask(__name__)
    app.request_class = request_class
    body = multipart([("images", "large.npy", data)])
    with app.test_request_context("/", method="POST", data=body,
                                  content_type=f"multipart/form-data; boundary={BOUNDARY}"):
        upload = request.files["images"]
        return upload.stream, upload.read()


def test_a_large_upload_is_held_in_memory_and_read_back_whole():
    data = bytes(range(256)) * (LARGE // 256)
    stream, read = _parsed(UploadRequest, data)
    assert isinstance(stream, io.BytesIO), RECHECK
    assert read == data


def test_werkzeug_itself_would_spool_it():
    # What the override saves: were werkzeug's default an in-memory stream, the seam could go.
    stream, _ = _parsed(Request, b"x" * LARGE)
    assert not isinstance(stream, io.BytesIO), \
        "werkzeug no longer spools large uploads: drop api/images/upload_request.py"
