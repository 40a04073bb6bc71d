"""The API's task messages: Celery's task message, laid out exactly as kombu's own producer pushes it."""

from __future__ import annotations

import json

import redis

from api.task_messages import TaskMessages
from inferq import messages
from inferq.celery_app import make_celery
from inferq.priorities import BULK, INTERACTIVE
from inferq.settings import Settings

QUEUE = "published"


def jobs() -> list[messages.JobInput]:
    return [messages.JobInput("j1", bytes(range(256)) * 3 + bytes(16), "api-1")]


def test_an_envelope_is_celerys_task_message_for_the_queue(redis_url):
    task_messages = TaskMessages(make_celery(Settings(redis_url=redis_url, queue_name=QUEUE)), QUEUE)
    assert task_messages.envelope(jobs(), INTERACTIVE).queue_key == QUEUE
    envelope = task_messages.envelope(jobs(), BULK)
    assert envelope.queue_key == f"{QUEUE}.bulk"
    message = json.loads(envelope.raw)
    assert message["headers"]["task"] == messages.TASK_NAME
    assert message["headers"][messages.IMAGES_HEADER] == 1
    assert message["headers"]["argsrepr"] == "<1 jobs, 1 images>"
    args, kwargs, _ = json.loads(message["body"])
    assert messages.decode(args[0]) == jobs()
    assert message["properties"]["delivery_info"] == {"exchange": "", "routing_key": f"{QUEUE}.bulk"}


def test_an_envelope_is_what_kombus_producer_pushes_for_the_same_message(redis_url):
    """The contract behind pushing messages ourselves (inferq.broker.envelope): kombu's layout."""
    celery = make_celery(Settings(redis_url=redis_url, queue_name=QUEUE))
    ours = json.loads(TaskMessages(celery, QUEUE).envelope(jobs(), INTERACTIVE).raw)
    with celery.connection_for_write() as connection:
        producer = celery.amqp.Producer(connection, auto_declare=False)
        producer.publish(json.loads(ours["body"]), exchange="", routing_key=QUEUE, headers=ours["headers"],
                         serializer="json", **{key: ours["properties"][key] for key in ("correlation_id", "reply_to")})
    kombus = json.loads(redis.Redis.from_url(redis_url).rpop(QUEUE))
    for message in (ours, kombus):
        message["properties"].pop("delivery_tag")
    assert ours == kombus
