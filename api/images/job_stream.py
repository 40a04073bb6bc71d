"""``GET /jobs/<id>/events``: a job's changes as server-sent events, until it ends.

Each change of the job's status or progress is one event, ``event: status`` with the job's summary
as its data (``{"job_id", "status", "model", "priority", "images", "progress", "created_at",
"started_at", "finished_at", "error"}``; the answers are at ``GET /jobs/<id>``): first the job as
it is, then each change (``queued``, ``running``, its progress, how it ended), and the stream ends
with the job, or after JOB_EVENTS_MAX_S. A comment line keeps a quiet stream open through proxies.
Each event's ``id`` is the job's state (``running:120``): a browser's EventSource reconnects
after the stream ends, sending the last one, and is answered ``204 No Content``, which stops it,
once the job it last saw had ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Response, request

from api.queue.job_watch import changes
from api.runtime import runtime
from inferq.job_view import progress
from inferq.jobs import DONE, FINAL, JobRecord

#: Seconds of quiet after which a comment line is sent: proxies close connections idle for long.
KEEPALIVE_S = 15.0


def event_stream(job_id: str) -> Response:
    rt = runtime()
    record = rt.queue.job(job_id)  # an unknown job is a 404 of its own, not a stream
    if record.status in FINAL and request.headers.get("Last-Event-ID", "").partition(":")[0] in FINAL:
        return Response(status=204)
    stream = changes(rt.queue, rt.events, record, rt.settings.job_events_max_s, KEEPALIVE_S)
    return Response(_events(stream), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def summary(record: JobRecord) -> dict[str, object]:
    """What an event says of the job: its record without the answers."""
    return {"job_id": record.job_id, "status": record.status, "model": record.model, "priority": record.priority,
            "images": len(record.filenames), "progress": progress(record), "created_at": record.created_at,
            "started_at": record.started_at, "finished_at": record.finished_at,
            "error": record.outcome.error if record.outcome is not None and record.outcome.status != DONE else None}


def _events(stream: Iterator[JobRecord | None]) -> Iterator[str]:
    for record in stream:
        if record is None:
            yield ": keep-alive\n\n"
            continue
        state = f"{record.status}:{progress(record)['items_done']}"
        yield f"id: {state}\nevent: status\ndata: {json.dumps(summary(record), separators=(',', ':'))}\n\n"
