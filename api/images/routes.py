"""Recognising uploads: ``POST .../recognize`` waits for the answer, ``POST .../jobs`` queues a job to poll.

Every model that takes images has both, under ``/models/<name>/``; ``POST /recognize`` and
``POST /jobs`` are the default model's (DEFAULT_MODEL). The original Go server's answer is kept:
one image gives ``{"filename": ..., "labels": [label], ...}``; several give ``{"results": [one such
object per image, in upload order]}`` (``inferq.answers``). ``.../recognize`` is interactive work and
``.../jobs`` bulk work unless the request says otherwise (``api.queue.scheduling``). Both take an
``Idempotency-Key`` (``api.queue.idempotency``); ``DELETE /jobs/<id>`` cancels a job (``JobStore.cancel``).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from api.errors import ApiError
from api.images import callback_field, job_stream
from api.images.uploads import read_upload
from api.queue import idempotency
from api.queue.dispatch import check_version, served_model, submit, submit_and_wait
from api.queue.job_watch import until_final, wait_parameter
from api.queue.scheduling import from_request
from api.runtime import runtime
from inferq.answers import item_answers
from inferq.job_view import job_view
from inferq.jobs import FAILED, QUEUED, JobRecord
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
    idempotency.key_of(request)  # a malformed key is refused before the upload is read
    served = served_model(name, version)
    upload = read_upload(request, rt.settings, served)
    job_id, outcome = submit_and_wait(served, upload.inputs, upload.filenames, from_request(request, INTERACTIVE))
    if outcome.status == FAILED:
        raise ApiError(500, f"recognition failed: {outcome.error}", job_id=job_id)
    check_version(served, (outcome.answer or {}).get("model_version"))
    answers = item_answers(upload.filenames, outcome, served.spec)
    body = answers[0] if len(answers) == 1 else {"results": answers}
    return jsonify({**body, "job_id": job_id})


@blueprint.post("/jobs")
def create_job() -> tuple[Response, int, dict[str, str]]:
    return create_job_with(runtime().settings.default_model)


@blueprint.post("/models/<model:name>/jobs")
@blueprint.post("/models/<model:name>/versions/<int:version>/jobs")
def create_job_with(name: str, version: int | None = None) -> tuple[Response, int, dict[str, str]]:
    rt = runtime()
    idempotency.key_of(request)  # a malformed key is refused before the upload is read
    served = served_model(name, version)
    upload = read_upload(request, rt.settings, served)
    scheduling = from_request(request, BULK)
    callback = callback_field.from_request(request, rt.settings)

    def fingerprint() -> str:
        return idempotency.fingerprint(model=name, version=version, inputs=upload.inputs,
                                       filenames=upload.filenames, scheduling=scheduling, callback=callback)

    def create(job_id: str | None) -> str:
        return submit(served, upload.inputs, upload.filenames, reply=False, scheduling=scheduling,
                      callback=callback, job_id=job_id).job_id

    created = idempotency.create_once(request, rt.queue.store, model=name, request_fingerprint=fingerprint,
                                      create=create)
    location = url_for("images.get_job", job_id=created.job_id)
    # A retry is answered the job as it stands now.
    status = rt.queue.job(created.job_id).status if created.replayed else QUEUED
    body = {"job_id": created.job_id, "status": status, "model": name, "priority": scheduling.priority,
            "images": len(upload.filenames), "location": location}
    return jsonify(body), 202, {"Location": location}


@blueprint.delete("/jobs/<job_id>")
def cancel_job(job_id: str) -> Response:
    """Cancel a queued or running job: it is not run, or its answer is discarded."""
    return _job_response(runtime().queue.cancel(job_id))


@blueprint.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    rt = runtime()
    # ?wait=S: a long poll, answered as soon as the job ends (or after S with the job as it is).
    wait_s = wait_parameter(request.args.get("wait"), rt.settings.job_wait_max_s)
    return _job_response(until_final(rt.queue, rt.events, job_id, wait_s))


def _job_response(record: JobRecord) -> Response:
    """The job as GET /jobs/<id> shows it (``inferq.job_view``), with its place if it is queued."""
    queue = runtime().queue.position(record) if record.status == QUEUED else None
    return jsonify(job_view(record, _spec_of(record), queue))


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
