"""Recognising uploads: ``POST .../recognize`` waits for the answer, ``POST .../jobs`` queues a job to poll.

Every model that takes images has both, under ``/models/<name>/``; ``POST /recognize`` and
``POST /jobs`` are the default model's (DEFAULT_MODEL). The original Go server's answer is kept:
one image gives ``{"filename": ..., "labels": [label], ...}``; several give ``{"results": [one such
object per image, in upload order]}`` (``api.answers``). ``.../recognize`` is interactive work and
``.../jobs`` bulk work unless the request says otherwise (``api.scheduling``).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from api import job_stream
from api.answers import item_answers
from api.errors import ApiError
from api.job_watch import progress, until_final, wait_parameter
from api.runtime import runtime
from api.scheduling import from_request
from api.tensors import check_version, served_model, submit
from api.uploads import read_upload
from inferq.jobs import DONE, FAILED, JobRecord
from inferq.model_spec import ModelSpec
from inferq.priorities import BULK, INTERACTIVE

blueprint = Blueprint("images", __name__)


@blueprint.post("/recognize")
def recognize() -> Response:
    return recognize_with(runtime().settings.default_model)


@blueprint.post("/models/<model:name>/recognize")
@blueprint.post("/models/<model:name>/versions/<int:version>/recognize")
def recognize_with(name: str, version: int | None = None) -> Response:
    rt = runtime()
    served = served_model(name, version)
    upload = read_upload(request, rt.settings, served)
    submitted = submit(served, upload.inputs, upload.filenames, reply=True,
                       scheduling=from_request(request, INTERACTIVE))
    outcome = rt.queue.wait(submitted)
    if outcome.status == FAILED:
        raise ApiError(500, f"recognition failed: {outcome.error}", job_id=submitted.job_id)
    check_version(served, (outcome.answer or {}).get("model_version"))
    answers = item_answers(upload.filenames, outcome, served.spec)
    body = answers[0] if len(answers) == 1 else {"results": answers}
    return jsonify({**body, "job_id": submitted.job_id})


@blueprint.post("/jobs")
def create_job() -> tuple[Response, int, dict[str, str]]:
    return create_job_with(runtime().settings.default_model)


@blueprint.post("/models/<model:name>/jobs")
@blueprint.post("/models/<model:name>/versions/<int:version>/jobs")
def create_job_with(name: str, version: int | None = None) -> tuple[Response, int, dict[str, str]]:
    rt = runtime()
    served = served_model(name, version)
    upload = read_upload(request, rt.settings, served)
    scheduling = from_request(request, BULK)
    job_id = submit(served, upload.inputs, upload.filenames, reply=False, scheduling=scheduling).job_id
    location = url_for("images.get_job", job_id=job_id)
    body = {"job_id": job_id, "status": "queued", "model": name, "priority": scheduling.priority,
            "images": len(upload.filenames), "location": location}
    return jsonify(body), 202, {"Location": location}


@blueprint.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    rt = runtime()
    # ?wait=S: a long poll, answered as soon as the job ends (or after S with the job as it is).
    wait_s = wait_parameter(request.args.get("wait"), rt.settings.job_wait_max_s)
    record = until_final(rt.queue, rt.events, job_id, wait_s)
    body: dict[str, object] = {
        "job_id": record.job_id,
        "status": record.status,
        "model": record.model,
        "priority": record.priority,
        "images": len(record.filenames),
        "progress": progress(record),
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "result": None,
        "error": None,
    }
    if record.outcome is not None:
        if record.outcome.status != DONE:
            body["error"] = record.outcome.error
        else:
            body["result"] = {"results": item_answers(record.filenames, record.outcome, _spec_of(record))}
    return jsonify(body)


@blueprint.get("/jobs/<job_id>/events")
def job_events(job_id: str) -> Response:
    return job_stream.event_stream(job_id)


def _spec_of(record: JobRecord) -> ModelSpec | None:
    """The job's model as served now, for its class names; None if it is no longer served."""
    if record.model is None:
        return None
    try:
        return served_model(record.model).spec
    except ApiError:
        return None
