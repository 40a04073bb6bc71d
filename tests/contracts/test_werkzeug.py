"""api/images/upload_request.py overrides a werkzeug hook that is private by name: this fails, naming it,
when werkzeug changes it."""

from __future__ import annotations

import importlib.metadata
import inspect
import io

from flask import Flask, Request, request

from api.images.upload_request import TESTED_WERKZEUG, WERKZEUG_INTERNALS, CooperativeFormParser, UploadRequest
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


def test_the_parser_overrides_werkzeugs_public_parse_with_its_arguments():
    from werkzeug.formparser import FormDataParser

    assert UploadRequest.form_data_parser_class is CooperativeFormParser
    assert (list(inspect.signature(FormDataParser.parse).parameters)
            == list(inspect.signature(CooperativeFormParser.parse).parameters)
            == ["self", "stream", "mimetype", "content_length", "options"]), RECHECK


def test_a_many_part_upload_parses_whole_in_slices():
    app = Flask(__name__)
    app.request_class = UploadRequest
    parts = [("image", f"{i}.png", bytes([i]) * 5000) for i in range(40)]  # 200 KB: many slices
    with app.test_request_context("/", method="POST", data=multipart(parts),
                                  content_type=f"multipart/form-data; boundary={BOUNDARY}"):
        assert [(f.filename, f.read()) for f in request.files.getlist("image")] == [(n, d) for _, n, d in parts]


def test_a_urlencoded_form_past_a_slice_is_read_whole():
    app = Flask(__name__)
    app.request_class = UploadRequest
    with app.test_request_context("/", method="POST", data={"text": "x" * 50_000}):
        assert request.form["text"] == "x" * 50_000


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
