"""Flask's request with its uploaded files held in memory, never spooled to a temporary file.

Werkzeug writes the file parts of a request over 500 KB to a temporary file, so that a large
upload need not sit in memory. Here that only costs: every file part is read whole into memory
straight after parsing (``api.images.uploads``), and MAX_REQUEST_BYTES bounds the request. Creating,
writing and reading back the file was about a fifth of the API's CPU on bulk uploads
(docs/benchmarks.md).

``Request._get_file_stream`` is werkzeug's documented hook for this, private by name:
tests/contracts/test_werkzeug.py fails, naming the versions below, when it changes.
"""

from __future__ import annotations

import io
from typing import IO

from flask import Request

#: The werkzeug releases this hook was checked against.
TESTED_WERKZEUG = ("3.1.9",)
WERKZEUG_INTERNALS = ("Request._get_file_stream(total_content_length, content_type, filename, content_length), "
                      "called once a file part, its stream read back by FileStorage.read()",)


class UploadRequest(Request):
    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        return io.BytesIO()
