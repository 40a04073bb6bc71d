"""The rendering of errors: every error response is ``{"error": ..., ...}`` JSON with its status.

The values are ``api.errors``'; this module is the Flask side, registered once on the app.
"""

from __future__ import annotations

import logging

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from api.errors import ApiError, RetryAfter, SendFailed, client_text, queue_error
from api.images.errors import ImageError, image_error_status
from inferq.jobs import QueueFull, TenantOverQuota

log = logging.getLogger(__name__)


def error_response(status: int, message: str, headers: dict[str, str] | None = None,
                   **details: object) -> Response:
    shown = client_text(message)
    if shown != message:
        log.info("error text shown without internal paths: %s", message)
    response = jsonify({"error": shown, **details})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _render(error: ApiError) -> Response:
    return error_response(error.status, error.message, error.headers, **error.details)


def register_error_handlers(app: Flask, retry_after_s: RetryAfter | None = None) -> None:
    """``retry_after_s(error, fallback)``: a full queue's Retry-After (default: the fallback)."""
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return _render(error)

    @app.errorhandler(redis.RedisError)
    @app.errorhandler(SendFailed)
    @app.errorhandler(QueueFull)
    @app.errorhandler(TenantOverQuota)
    def refused_by_the_queue(error: Exception) -> Response:
        return _render(queue_error(error, retry_after_s))

    @app.errorhandler(ImageError)
    def bad_image(error: ImageError) -> Response:
        return error_response(image_error_status(error), str(error))

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
