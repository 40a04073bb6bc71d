"""``GET /openapi.json``: the OpenAPI 3.1 description of every route, kept beside this module.

The document is written by hand and checked by the tests against the app's routes and responses.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, jsonify

SPEC = Path(__file__).with_name("openapi.json")

blueprint = Blueprint("openapi", __name__)


@cache
def spec() -> dict:
    return json.loads(SPEC.read_text())


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(spec())
