"""The Flask app: ``create_app(settings)`` builds the routes of every protocol over one queue.

Served by granian or gunicorn (API_SERVER), both started by ``python -m api.serve``.
"""

from __future__ import annotations

import time

import redis
from flask import Flask, Response, g, request

from api import health, openapi, web
from api.auth import refuse_cross_site_writes, require_api_key
from api.error_responses import register_error_handlers
from api.images import routes as image_routes
from api.images.upload_request import UploadRequest
from api.json_provider import OrjsonProvider
from api.kserve import routes as kserve
from api.metrics import ApiMetrics
from api.queue import hand_back
from api.queue.inference_queue import InferenceQueue
from api.queue.job_events import JobEvents
from api.queue.model_lookup import ModelName, ServedModels
from api.queue.replies import ReplyListener
from api.queue.submitter import Submitter
from api.runtime import EXTENSION, Runtime
from api.tfserving import routes as tfserving
from inferq import messages
from inferq.catalog import ModelCatalog
from inferq.celery_app import make_celery
from inferq.jobs import JobStore
from inferq.redis_connection import connect
from inferq.settings import Settings
from inferq.task_messages import TaskMessages
from inferq.tenants import TenantDirectory
from inferq.worker_registry import WorkerRegistry


def create_app(settings: Settings | None = None, *, redis_client: redis.Redis | None = None,
               store: JobStore | None = None, models_ttl_s: float | None = None) -> Flask:
    """The API app; ``redis_client`` and ``store`` replace the ones built from ``settings`` (tests), and
    ``models_ttl_s`` how long what is served is cached (default: a quarter of a heartbeat interval;
    tests that publish heartbeats between requests read it afresh with 0)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.request_class = UploadRequest
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        # Each image is one part; a few more for other fields.
        MAX_FORM_PARTS=settings.max_images_per_request + 16,
    )
    app.json = OrjsonProvider(app)

    client = redis_client or connect(settings.redis_url, sentinel_master=settings.redis_sentinel_master,
                                     socket_timeout_s=settings.sync_timeout_s + 10)
    store = store or JobStore(client, result_ttl_s=settings.result_ttl_s, depth_limits=settings.depth_limits,
                              replicas=settings.replicas_to_await,
                              replica_timeout_ms=settings.redis_replica_ack_timeout_ms)
    workers = WorkerRegistry(client, heartbeat_interval_s=settings.heartbeat_interval_s)
    task_messages = TaskMessages(make_celery(settings), settings)

    models = ServedModels(ModelCatalog(client), workers,
                          ttl_s=settings.heartbeat_interval_s / 4 if models_ttl_s is None else models_ttl_s,
                          forget_after_s=settings.model_forget_after_s)
    tenants = TenantDirectory(settings.tenants_file, settings.api_key, on_load=store.publish_tenants)
    metrics = ApiMetrics(store, workers, models, tenants)
    replies = ReplyListener(store, on_skipped=metrics.replies_skipped.inc)

    def make_submitter(model: str, priority: str, max_items: int, tenant: str) -> Submitter:
        return Submitter(task_messages, store, model=model, priority=priority, max_items_per_message=max_items,
                         tenant=lambda: tenants.tenant(tenant),
                         # Shares only where there are tenants to share among: else as before them.
                         fair_share=settings.tenants_file is not None,
                         store_large=lambda: models.workers_read(messages.STORED_INPUTS))

    queue = InferenceQueue(store, make_submitter, replies, sync_timeout_s=settings.sync_timeout_s,
                           max_batch_size=settings.max_batch_size)
    app.extensions[EXTENSION] = Runtime(
        settings=settings,
        queue=queue,
        models=models,
        workers=workers,
        metrics=metrics,
        replies=replies,
        events=JobEvents(client),
        tenants=tenants,
    )

    app.url_map.converters["model"] = ModelName
    register_error_handlers(app, queue.retry_after_s)
    hand_back.register(app)
    _measure_requests(app, metrics)
    refuse_cross_site_writes(app, settings.trusted_origins)
    require_api_key(app, tenants)
    app.register_blueprint(image_routes.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(openapi.blueprint)
    app.register_blueprint(tfserving.blueprint)
    app.register_blueprint(kserve.blueprint)
    app.register_blueprint(web.blueprint)
    return app


def _measure_requests(app: Flask, metrics: ApiMetrics) -> None:
    @app.before_request
    def start_clock() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        if "started" in g:
            metrics.latency.labels(route).observe(time.perf_counter() - g.started)
        return response
