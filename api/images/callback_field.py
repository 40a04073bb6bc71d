"""A job's ``callback``: the URL its final record is POSTed to, from the request that queues it.

``POST /jobs`` and ``POST /models/<name>[/versions/<v>]/jobs`` take it as a form field of the upload
or a query parameter, checked against CALLBACK_ALLOWED_URLS before anything is queued
(``inferq.callbacks.check_url``): 400 for what is not an http(s) URL, 422 for one not allowed.
"""

from __future__ import annotations

from flask import Request

from api.errors import ApiError
from inferq.callbacks import CallbackUrlError, check_url
from inferq.settings import Settings

FIELD = "callback"


def from_request(request: Request, settings: Settings) -> str | None:
    """The request's checked callback URL, or None where it gives none."""
    url = request.form.get(FIELD) if request.mimetype == "multipart/form-data" else None
    if url is None:
        url = request.args.get(FIELD)
    if url is None or url == "":
        return None
    try:
        return check_url(url, settings.callback_prefixes)
    except CallbackUrlError as error:
        raise ApiError(error.status, str(error), reason="callback") from None
