"""Is it up, is it ready, what does it serve: ``/healthz``, ``/readyz``, ``/models``, ``/status``,
``/metrics``.

The API knows the workers only by what they write to Redis (they may run on other hosts): the
models and versions they serve in the catalog (``inferq.catalog``), and which of them are alive in
their heartbeats.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.error_responses import error_response
from api.errors import ApiError
from api.queue.dispatch import served_model
from api.runtime import runtime
from inferq.model_spec import ModelSpec
from inferq.worker_registry import WorkerStatus, served_versions

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers and every model has a live worker that serves it. With
    ``?workers=optional``, when Redis answers: for an API whose workers are started on demand
    (scaled from zero on their queues' length), which must take work for a worker to be started."""
    workers = request.args.get("workers", "required")
    if workers not in ("required", "optional"):
        raise ApiError(400, f"workers must be 'required' or 'optional', got {workers!r}")
    live = _live_workers()  # Redis out of reach: its 503
    models = runtime().models.all()  # read with ``live``
    served = served_versions(live)
    waiting = sorted(set(models) - set(served))
    if workers == "required" and (waiting or not served):
        detail = f"no live worker serves {', '.join(waiting)}" if waiting else "no live worker has a model loaded"
        return error_response(503, f"not ready: {detail}", reason="no_worker", models_without_workers=waiting)
    return jsonify({"status": "ready", "workers": len(live),
                    "models": {name: sorted(versions) for name, versions in served.items()}})


@blueprint.get("/models")
def models() -> Response:
    live = _live_workers()
    served = served_versions(live)
    return jsonify({"models": [_describe(specs, served.get(name, set()))
                               for name, specs in runtime().models.all().items()]})


@blueprint.get("/models/<model:name>")
@blueprint.get("/models/<model:name>/versions/<int:version>")
def model(name: str, version: int | None = None) -> Response:
    found = served_model(name, version)
    specs = runtime().models.all().get(name, [found.spec])  # read again: it may be gone since
    if version is not None:
        specs = [spec for spec in specs if spec.version == version]
    return jsonify(_describe(specs, served_versions(_live_workers()).get(found.name, set())))


def _describe(specs: list[ModelSpec], live_versions: set[int]) -> dict:
    newest = specs[-1]
    settings = runtime().settings
    config = newest.config
    return {
        "name": newest.name,
        "versions": [spec.version for spec in specs],
        "ready_versions": sorted(live_versions & {spec.version for spec in specs}),
        "signature": newest.signature,
        "inputs": [tensor.to_json() for tensor in newest.inputs],
        "outputs": [tensor.to_json() for tensor in newest.outputs],
        "batching": {"max_batch_size": config.batch_size_or(settings.max_batch_size),
                     "max_batch_wait_ms": config.batch_wait_ms_or(settings.max_batch_wait_ms)},
        "labels": list(config.labels) if config.labels else None,
        "version_policy": config.version_policy.to_json(),
    }


@blueprint.get("/status")
def status() -> Response:
    """The system at a glance, for people and the web page: workers, models, queues, recent batches."""
    rt = runtime()
    live = _live_workers()
    served = served_versions(live)
    names = list(rt.models.all())
    queued = rt.queue.queued_images(names)
    limits = rt.queue.depth_limits
    default = served.get(rt.settings.default_model, set())
    lanes = {priority: {"queued_images": sum(lanes[priority] for lanes in queued.values()), "limit": limits[priority]}
             for priority in limits}
    return jsonify({
        "ready": bool(served) and set(names) <= set(served),
        "workers": len(live),
        "default_model": rt.settings.default_model,
        "model_versions": sorted(default),
        "models": {name: {"versions": sorted(served.get(name, set())), "queued_images": queued.get(name, {})}
                   for name in names},
        "queued_images": sum(lane["queued_images"] for lane in lanes.values()),
        "lanes": lanes,
        "recent_batch_sizes": {worker.name: worker.recent_batch_sizes for worker in live},
        "dead_letters": rt.queue.dead_letters(),
        "tenants": _tenants(rt),
        # Versions a worker found but could not load (the reason is in its log); it tries again.
        "load_failures": [{"worker": worker.name, "model": failure["model"], "version": failure["version"],
                           "attempts": failure["attempts"]}
                          for worker in live for failure in worker.load_failures],
    })


@blueprint.get("/metrics")
def metrics() -> Response:
    return Response(runtime().metrics.render(), mimetype="text/plain; version=0.0.4")


def _tenants(rt) -> dict[str, dict]:
    """Each tenant's weight and limits, and what it has queued, been admitted and refused, had
    answered, and how long its jobs waited queued on average (None before one started)."""
    configured = rt.tenants.tenants()
    stats = rt.queue.store.tenant_stats([tenant.name for tenant in configured])
    shown = {}
    for tenant in configured:
        counts = stats[tenant.name]
        started = counts["jobs_started"]
        shown[tenant.name] = {
            "weight": tenant.weight, "max_queued_items": tenant.max_queued_items,
            "max_items_per_s": tenant.max_items_per_s,
            "queued_items": counts["queued_items"], "items_admitted": counts["items_admitted"],
            "items_refused": counts["items_refused"], "items_ended": counts["items_ended"],
            "jobs_started": started,
            "mean_queue_wait_s": counts["queue_wait_s_total"] / started if started else None,
        }
    return shown


def _live_workers() -> list[WorkerStatus]:
    """The live workers, read now, and with them what is served (``runtime().models.all()`` after
    this call): the routes here answer from one view, never a cached one older than the heartbeats."""
    return runtime().models.live(fresh=True)
