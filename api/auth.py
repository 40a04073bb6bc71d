"""Who may call the API: the optional API keys, and no state-changing request from another web site.

When API_KEY or TENANTS_FILE is set, every route but the probes needs a key as a bearer token, and
``/readyz`` tells a caller without one only whether the service is ready, not which models it
serves or lacks. The key says which tenant the request is of (``inferq.tenants``): ``g.tenant``.

Whatever API_KEY, a browser must not be usable against the API by a page of another site: a
multipart form POST needs no CORS preflight, so without a key any page a user visits could queue
work on a service the user's browser reaches (localhost, an intranet). Browsers say where a request
comes from (``Sec-Fetch-Site``, ``Origin``); clients that are not browsers (curl, the Python client,
tritonclient) send neither and are not affected, nor is the project's own page, served from the
same origin as the API.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from flask import Flask, Response, g, request

from api.error_responses import error_response
from api.errors import ApiError
from inferq.tenants import TenantDirectory

#: Probes that orchestrators call without credentials, and the web page and its assets (``static``,
#: Flask's route for ``api/static``), which hold no data: the page asks for the key to call the rest.
OPEN_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "web.page", "static"})
#: The probe that answers without the key, but only ready or not.
READINESS = "health.readyz"
#: Methods that change nothing (RFC 9110's safe methods): answered whoever asks.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def require_api_key(app: Flask, tenants: TenantDirectory) -> None:
    """Every request's tenant in ``g.tenant`` (an open service's callers are all ``default``); one
    without a key of a tenant refused with 401, but on the open endpoints."""

    @app.before_request
    def check_api_key() -> None:
        # Constant time (TenantDirectory): how much of a guess matched must not show in how long a refusal takes.
        g.tenant = tenants.tenant_for_authorization(request.headers.get("Authorization"))
        g.authenticated = g.tenant is not None
        if request.endpoint in OPEN_ENDPOINTS or g.authenticated:
            return
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": 'Bearer realm="inferq"'})

    @app.after_request
    def readiness_only(response: Response) -> Response:
        # Done here, not in /readyz, so that whatever readiness comes to report stays behind the key.
        if request.endpoint != READINESS or g.get("authenticated", False) or response.status_code not in (200, 503):
            return response
        if response.status_code == 200:
            return _with_headers(Response(b'{"status":"ready"}', 200, mimetype="application/json"), response)
        reason = (response.get_json(silent=True) or {}).get("reason")
        return _with_headers(error_response(503, "not ready", **({"reason": reason} if reason else {})), response)


def _with_headers(reduced: Response, original: Response) -> Response:
    for name, value in original.headers.items():
        if name.lower() not in ("content-length", "content-type"):
            reduced.headers[name] = value
    return reduced


def refuse_cross_site_writes(app: Flask, allowed_origins: Collection[str] = ()) -> None:
    """Refuse with 403 a state-changing request a browser sends from another site: one whose
    ``Sec-Fetch-Site`` is ``cross-site``, or whose ``Origin`` is neither this API's own (its
    ``Host``) nor one of ``allowed_origins`` (``scheme://host[:port]``)."""
    allowed = frozenset(_origin_key(origin) for origin in allowed_origins)

    @app.before_request
    def check_origin() -> None:
        if request.method in SAFE_METHODS:
            return
        origin = request.headers.get("Origin")
        key = None if origin is None else _origin_key(origin)
        if key is not None and key in allowed:
            return
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            raise _refused("from another site")
        # The scheme is not compared: behind a proxy that ends TLS, the page is https and the API http.
        if origin is not None and (key is None or key[1:] != _host_key(request.host, key[0])):
            raise _refused(f"from origin {origin!r}")


def _refused(where: str) -> ApiError:
    return ApiError(403, f"cross-site request refused: a browser sent it {where}; this API takes "
                         "state-changing requests only from its own origin, those in ALLOWED_ORIGINS, "
                         "and clients that are not browsers", reason="cross_site")


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a serialised origin; None for ``null`` or anything unparsable."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or _DEFAULT_PORTS[parts.scheme]


def _host_key(host: str, scheme: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``Host`` header, its port defaulting to the origin's scheme's."""
    key = _origin_key(f"{scheme}://{host}")
    return None if key is None else key[1:]
