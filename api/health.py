"""Is it up, is it ready, what does it serve: ``/healthz``, ``/readyz``, ``/models``, ``/status``,
``/metrics``.

The API knows the workers only by their heartbeats in Redis (they may run on other hosts), so
readiness and the served model are what live workers last said.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.errors import ApiError, error_response
from api.runtime import runtime
from inferq.workers import WorkerStatus

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers and a live worker has a model. With ``?workers=optional``, when Redis
    answers: for an API whose workers are started on demand (scaled from zero on their queues'
    length), which must take work for a worker to be started at all."""
    workers = request.args.get("workers", "required")
    if workers not in ("required", "optional"):
        raise ApiError(400, f"workers must be 'required' or 'optional', got {workers!r}")
    serving = _serving_workers()  # Redis out of reach: its 503
    if not serving and workers == "required":
        return error_response(503, "not ready: no live worker has a model loaded", reason="no_worker")
    return jsonify({
        "status": "ready",
        "workers": len(serving),
        "model_versions": sorted({worker.model_version for worker in serving}),
    })


@blueprint.get("/models")
def models() -> Response:
    rt = runtime()
    serving = _serving_workers()
    newest = max(serving, key=lambda worker: worker.model_version or 0) if serving else None
    return jsonify({
        "name": rt.settings.model_name,
        "versions": sorted({worker.model_version for worker in serving}),
        "served_version": newest.model_version if newest else None,
        "spec": newest.spec.to_json() if newest and newest.spec else None,
        "workers": [
            {"name": worker.name, "model_version": worker.model_version, "batches": worker.batches,
             "images": worker.images}
            for worker in serving
        ],
    })


@blueprint.get("/status")
def status() -> Response:
    """The system at a glance, for people and the web page: workers, model, queue, recent batches."""
    rt = runtime()
    serving = _serving_workers()
    queued = rt.queue.queued_images()
    limits = rt.queue.depth_limits
    return jsonify({
        "ready": bool(serving),
        "workers": len(serving),
        "model_versions": sorted({worker.model_version for worker in serving}),
        "queued_images": sum(queued.values()),
        "lanes": {priority: {"queued_images": queued[priority], "limit": limits[priority]} for priority in queued},
        "recent_batch_sizes": {worker.name: worker.recent_batch_sizes for worker in serving},
    })


@blueprint.get("/metrics")
def metrics() -> Response:
    return Response(runtime().metrics.render(), mimetype="text/plain; version=0.0.4")


def _serving_workers() -> list[WorkerStatus]:
    return [worker for worker in runtime().workers.live() if worker.model_version is not None]
