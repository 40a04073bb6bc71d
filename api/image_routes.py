"""Recognising uploads: ``POST /recognize`` waits for the answer, ``POST /jobs`` queues a job to poll.

The original Go server's answer is kept: one image gives ``{"filename": ..., "labels": [digit], ...}``;
several give ``{"results": [one such object per image, in upload order]}``. ``/recognize`` is
interactive work and ``/jobs`` bulk work unless the request says otherwise (``api.scheduling``).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from api.errors import ApiError
from api.runtime import runtime
from api.scheduling import from_request
from api.uploads import read_upload
from inferq.jobs import DONE, FAILED, Outcome
from inferq.messages import ImageResult
from inferq.priorities import BULK, INTERACTIVE

blueprint = Blueprint("images", __name__)


@blueprint.post("/recognize")
def recognize() -> Response:
    rt = runtime()
    upload = read_upload(request, rt.settings)
    scheduling = from_request(request, INTERACTIVE)
    submitted = rt.queue.submit(upload.filenames, upload.pixels, reply=True, priority=scheduling.priority,
                                timeout_s=scheduling.timeout_s)
    rt.metrics.images_accepted.inc(len(upload.filenames))
    outcome = rt.queue.wait(submitted)
    if outcome.status == FAILED:
        raise ApiError(500, f"recognition failed: {outcome.error}", job_id=submitted.job_id)
    answers = image_answers(upload.filenames, outcome)
    body = answers[0] if len(answers) == 1 else {"results": answers}
    return jsonify({**body, "job_id": submitted.job_id})


@blueprint.post("/jobs")
def create_job() -> tuple[Response, int, dict[str, str]]:
    rt = runtime()
    upload = read_upload(request, rt.settings)
    scheduling = from_request(request, BULK)
    job_id = rt.queue.submit(upload.filenames, upload.pixels, reply=False, priority=scheduling.priority,
                             timeout_s=scheduling.timeout_s).job_id
    rt.metrics.images_accepted.inc(len(upload.filenames))
    location = url_for("images.get_job", job_id=job_id)
    body = {"job_id": job_id, "status": "queued", "priority": scheduling.priority, "images": len(upload.filenames),
            "location": location}
    return jsonify(body), 202, {"Location": location}


@blueprint.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    record = runtime().queue.job(job_id)
    body: dict[str, object] = {
        "job_id": record.job_id,
        "status": record.status,
        "priority": record.priority,
        "images": len(record.filenames),
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
            body["result"] = {"results": image_answers(record.filenames, record.outcome)}
    return jsonify(body)


def image_answers(filenames: list[str], outcome: Outcome) -> list[dict[str, object]]:
    results: list[ImageResult] = outcome.results or []
    names = filenames if len(filenames) == len(results) else [""] * len(results)
    return [
        {
            "filename": name,
            "labels": [result["label"]],
            "probabilities": result["probabilities"],
            "model_version": result["model_version"],
        }
        for name, result in zip(names, results, strict=True)
    ]
