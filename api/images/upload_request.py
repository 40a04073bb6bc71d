"""Flask's request with its uploaded files held in memory, never spooled to a temporary file.

Werkzeug writes the file parts of a request over 500 KB to a temporary file, so that a large
upload need not sit in memory. Here that only costs: every file part is read whole into memory
straight after parsing (``api.images.uploads``), and MAX_REQUEST_BYTES bounds the request. Creating,
writing and reading back the file was about a fifth of the API's CPU on bulk uploads
(docs/benchmarks.md).

``Request._get_file_stream`` is werkzeug's documented hook for this, private by name:
tests/contracts/test_werkzeug.py fails, naming the versions below, when it changes.

The body is parsed a slice at a time (:class:`CooperativeFormParser`): under gevent a body that has
arrived whole is read from the socket's buffer without ever waiting, and werkzeug's parser would
hold the process's hub, and every other request of the process, until the last part
(docs/benchmarks.md).
"""

from __future__ import annotations

import io
from typing import IO

from flask import Request
from werkzeug.formparser import FormDataParser

from api.images.offload import Turns

#: Bytes of the body parsed between two turns (``api.images.offload.Turns``): a thousand-part
#: upload of small images has a part header every few hundred bytes, and werkzeug's parser works
#: through 64 KiB at a read.
PARSE_SLICE_BYTES = 16 * 1024

#: The werkzeug releases this hook was checked against.
TESTED_WERKZEUG = ("3.1.9",)
WERKZEUG_INTERNALS = ("Request._get_file_stream(total_content_length, content_type, filename, content_length), "
                      "called once a file part, its stream read back by FileStorage.read()",)


class CooperativeFormParser(FormDataParser):
    """werkzeug's parser (its public ``parse``), fed the body at most :data:`PARSE_SLICE_BYTES` a read
    with a turn for the other requests between reads."""

    def parse(self, stream: IO[bytes], mimetype: str, content_length: int | None,
              options: dict[str, str] | None = None):
        if mimetype != "multipart/form-data":  # a urlencoded form is read whole, in one read
            return super().parse(stream, mimetype, content_length, options)
        _, form, files = super().parse(_Sliced(stream), mimetype, content_length, options)
        return stream, form, files


class _Sliced:
    """``stream`` read at most :data:`PARSE_SLICE_BYTES` at a time (werkzeug's multipart parser reads
    sizes and takes what comes), a turn before each read; a read of everything passes through."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._turns = Turns()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self._stream.read()
        self._turns()
        return self._stream.read(min(size, PARSE_SLICE_BYTES))


class UploadRequest(Request):
    form_data_parser_class = CooperativeFormParser

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        return io.BytesIO()
