"""A job as clients read it: the body of ``GET /jobs/<id>``, and of the job's callback once it ends.

One function for both, so that what a callback receiver gets is what polling would have shown.
"""

from __future__ import annotations

from inferq.answers import item_answers
from inferq.jobs import DONE, JobRecord
from inferq.model_spec import ModelSpec


def progress(record: JobRecord) -> dict[str, int]:
    """Items the model has answered of the job's items: all of a job done, else what its worker
    last reported (0 before its first model call ends)."""
    items = len(record.filenames)
    return {"items_done": items if record.status == DONE else min(record.items_done, items), "items": items}


def job_view(record: JobRecord, spec: ModelSpec | None, queue: dict[str, object] | None = None) -> dict[str, object]:
    """``record`` as JSON: ``spec`` is its model as served now (for class names; None if it is not),
    ``queue`` where it stands if it is queued (``inferq.drain.position``)."""
    body: dict[str, object] = {
        "job_id": record.job_id,
        "status": record.status,
        "model": record.model,
        "priority": record.priority,
        "tenant": record.tenant,
        "images": len(record.filenames),
        "progress": progress(record),
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "result": None,
        "error": None,
        "queue": queue,
        "callback": None if record.callback is None else record.callback.to_dict(),
    }
    if record.outcome is not None:
        if record.outcome.status != DONE:
            body["error"] = record.outcome.error
        else:
            body["result"] = {"results": item_answers(record.filenames, record.outcome, spec)}
    return body
