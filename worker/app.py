"""The Celery worker: an app whose one task answers batches of queued work, for every served model.

Run it with ``celery -A worker.main worker`` (the README lists the options ``make up`` uses).
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery, signals
from celery_batches import SimpleRequest

from inferq.broker import HeldMessages
from inferq.celery_app import make_celery
from inferq.messages import TASK_NAME
from inferq.redis_connection import connect
from inferq.settings import Settings
from worker.engine import Engine
from worker.item_batches import BATCH_ACKED, BATCH_DONE, ItemBatches
from worker.model_queues import ModelQueues


def create_worker_app(settings: Settings) -> Celery:
    model_queues = ModelQueues(settings, connect(settings.redis_url, sentinel_master=settings.redis_sentinel_master))
    app = make_celery(settings, queues=model_queues.names)
    # A pool process loads TensorFlow and the models before it reports ready.
    app.conf.worker_proc_alive_timeout = 120
    engine = Engine(settings)
    engine.answer_interactive_first(app.connection_for_read, lambda: model_queues.names)

    @app.task(name=TASK_NAME, base=ItemBatches, max_items=settings.max_batch_size,
              max_wait_s=settings.max_batch_wait_ms / 1000)
    def infer_batch(requests: Sequence[SimpleRequest], acks: HeldMessages | None = None) -> str:
        acked = engine.run_batch([request.args[0] for request in requests], acks)
        return BATCH_ACKED if acked else BATCH_DONE

    infer_batch.queue_length = model_queues.queue_length
    infer_batch.batch_limits = model_queues.batch_limits

    # Each model-holding process (the worker itself with the solo pool, each child with prefork)
    # builds its engine after any fork: TensorFlow does not survive one. A prefork child hears
    # worker_process_shutdown; the solo pool only the worker's own worker_shutdown.
    signals.worker_process_init.connect(lambda **_: engine.start(), weak=False)
    signals.worker_process_shutdown.connect(lambda **_: engine.stop(), weak=False)
    signals.worker_shutdown.connect(lambda **_: engine.stop(), weak=False)
    signals.worker_ready.connect(lambda sender, **_: model_queues.follow(sender), weak=False)
    return app
