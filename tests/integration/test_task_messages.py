"""The API's task messages: Celery's task message, laid out exactly as kombu's own producer pushes it."""

from __future__ import annotations

import json

import numpy as np
import redis

from inferq import messages
from inferq.celery_app import make_celery
from inferq.priorities import BULK, INTERACTIVE
from inferq.settings import Settings
from inferq.task_messages import TaskMessages

QUEUE = "published"
MODEL = "mnist"
#: The model's queues: one per model and priority, under QUEUE_NAME.
MODEL_QUEUE = f"{QUEUE}.{MODEL}"


def jobs() -> list[messages.JobInput]:
    pixels = np.frombuffer(bytes(range(256)) * 3 + bytes(16), np.uint8).reshape(1, 784)
    return [messages.JobInput("j1", {"inputdata": pixels}, "api-1")]


def test_an_envelope_is_celerys_task_message_for_the_queue(redis_url):
    settings = Settings(redis_url=redis_url, queue_name=QUEUE)
    task_messages = TaskMessages(make_celery(settings), settings)
    assert task_messages.envelope(MODEL, jobs(), INTERACTIVE).queue_key == MODEL_QUEUE
    envelope = task_messages.envelope(MODEL, jobs(), BULK)
    assert envelope.queue_key == f"{MODEL_QUEUE}.bulk"
    message = json.loads(envelope.raw)
    assert message["headers"]["task"] == messages.TASK_NAME
    assert message["headers"][messages.IMAGES_HEADER] == 1
    assert message["headers"][messages.MODEL_HEADER] == MODEL
    assert message["headers"]["argsrepr"] == f"<{MODEL}: 1 jobs, 1 items>"
    args, kwargs, _ = json.loads(message["body"])
    assert messages.decode(args[0]) == (MODEL, jobs())
    assert message["properties"]["delivery_info"] == {"exchange": "", "routing_key": f"{MODEL_QUEUE}.bulk"}


def test_an_envelope_is_what_kombus_producer_pushes_for_the_same_message(redis_url):
    """The contract behind pushing messages ourselves (inferq.broker.envelope): kombu's layout."""
    settings = Settings(redis_url=redis_url, queue_name=QUEUE)
    celery = make_celery(settings)
    ours = json.loads(TaskMessages(celery, settings).envelope(MODEL, jobs(), INTERACTIVE).raw)
    with celery.connection_for_write() as connection:
        producer = celery.amqp.Producer(connection, auto_declare=False)
        producer.publish(json.loads(ours["body"]), exchange="", routing_key=MODEL_QUEUE, headers=ours["headers"],
                         serializer="json", **{key: ours["properties"][key] for key in ("correlation_id", "reply_to")})
    kombus = json.loads(redis.Redis.from_url(redis_url).rpop(MODEL_QUEUE))
    for message in (ours, kombus):
        message["properties"].pop("delivery_tag")
    # The body is the same JSON value, written by orjson rather than kombu's encoder (whose spacing
    # differs): every JSON reader, kombu's included, reads the same message.
    assert json.loads(ours.pop("body")) == json.loads(kombus.pop("body"))
    assert ours == kombus
