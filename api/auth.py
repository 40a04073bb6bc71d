"""The optional API key: when API_KEY is set, every route but the probes needs it as a bearer token."""

from __future__ import annotations

import hmac

from flask import Flask, request

from api.errors import ApiError

#: Probes that orchestrators call without credentials, and the web page and its assets (``static``,
#: Flask's route for ``api/static``), which hold no data: the page asks for the key to call the rest.
OPEN_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "web.page", "static"})


def require_api_key(app: Flask, api_key: str) -> None:
    expected = f"Bearer {api_key}".encode()

    @app.before_request
    def check_api_key() -> None:
        if request.endpoint in OPEN_ENDPOINTS:
            return
        given = request.headers.get("Authorization", "").encode()
        # Constant time: how much of a guess matched must not show in how long a refusal takes.
        if not hmac.compare_digest(given, expected):
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                           headers={"WWW-Authenticate": 'Bearer realm="inferq"'})
