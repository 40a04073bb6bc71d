"""The web page at ``/``: draw or drop a digit and watch the system answer.

The page and its assets (``api/static``, served by Flask as the app's static folder) hold no data,
so they load without the API key: the page's script asks for the key when a call is refused and
sends it with every call after.
"""

from __future__ import annotations

from flask import Blueprint, render_template

blueprint = Blueprint("web", __name__, template_folder="templates")


@blueprint.get("/")
def page() -> str:
    return render_template("index.html")
