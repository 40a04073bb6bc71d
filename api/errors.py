"""Errors as values: raised where they are found, rendered once, always as JSON.

Every error response is ``{"error": "<what went wrong, for a person>", ...}`` with its status:
never an HTML page, never a traceback.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None,
                 **details: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.details = details


def error_response(status: int, message: str, headers: dict[str, str] | None = None,
                   **details: object) -> Response:
    response = jsonify({"error": message, **details})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return error_response(error.status, error.message, error.headers, **error.details)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        # Werkzeug's own: unknown route, wrong method, request too large, malformed request.
        headers = dict(error.get_headers()) if error.code == 405 else {}
        headers.pop("Content-Type", None)
        return error_response(error.code or 500, _HTTP_MESSAGES.get(error.code, error.description or ""), headers)

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal error; the server log has the details")


_HTTP_MESSAGES = {
    400: "malformed request",
    404: "no such route",
    405: "method not allowed on this route",
    413: "request too large",
}
