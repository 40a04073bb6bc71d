"""The service's URLs, built in one place so they follow the API as it grows.

``model=None`` is the service's default model on its original routes (``/recognize``, ``/jobs``);
a name targets ``/models/<name>/recognize`` and ``/models/<name>/jobs``. A job is read where the
service's ``Location`` header says, or at ``/jobs/<id>`` when it gives none.
"""

from __future__ import annotations

from urllib.parse import quote


def _model_prefix(model: str | None) -> str:
    return "" if model is None else f"/models/{quote(model, safe='')}"


def recognize(model: str | None = None) -> str:
    return f"{_model_prefix(model)}/recognize"


def jobs(model: str | None = None, callback: str | None = None) -> str:
    """Where a job is queued; ``callback``: the URL its final record is POSTed to when it ends."""
    query = f"?callback={quote(callback, safe='')}" if callback else ""
    return f"{_model_prefix(model)}/jobs{query}"


def job(job_id: str, location: str | None = None) -> str:
    return location or f"/jobs/{quote(job_id, safe='')}"
