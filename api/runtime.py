"""What an app's routes share: settings, the queue, the workers' registry, metrics.

Built once per app by :func:`api.app.create_app` and kept in ``app.extensions``, so tests can build
apps side by side with settings of their own.
"""

from __future__ import annotations

import dataclasses

from flask import current_app

from api.metrics import ApiMetrics
from api.queue.inference_queue import InferenceQueue
from api.queue.job_events import JobEvents
from api.queue.model_lookup import ServedModels
from api.queue.replies import ReplyListener
from inferq.settings import Settings
from inferq.tenants import TenantDirectory
from inferq.worker_registry import WorkerRegistry

EXTENSION = "inferq"


@dataclasses.dataclass
class Runtime:
    settings: Settings
    queue: InferenceQueue
    models: ServedModels
    workers: WorkerRegistry
    metrics: ApiMetrics
    replies: ReplyListener
    #: Job changes for long polls and event streams.
    events: JobEvents
    #: Who a key's caller is, and its share and limits (``inferq.tenants``).
    tenants: TenantDirectory


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION]
