"""The API's publisher on a real Redis: Celery's task message on the queue, or handed to a push of ours."""

from __future__ import annotations

import json

import redis

from api.publisher import TaskPublisher
from inferq import messages
from inferq.celery_app import make_celery
from inferq.settings import Settings

QUEUE = "published"


def one_job_body() -> dict:
    return messages.encode([messages.Job("j1", bytes(range(256)) * 3 + bytes(16), "api-1")])


def test_a_published_message_is_celerys_task_message_on_the_queue(redis_url):
    publisher = TaskPublisher(make_celery(Settings(redis_url=redis_url, queue_name=QUEUE)), QUEUE)
    body = one_job_body()
    publisher.publish(body, images=1, description="<1 jobs, 1 images>")
    envelope = json.loads(redis.Redis.from_url(redis_url).rpop(QUEUE))
    assert envelope["headers"]["task"] == messages.TASK_NAME
    assert envelope["headers"][messages.IMAGES_HEADER] == 1
    assert envelope["headers"]["argsrepr"] == "<1 jobs, 1 images>"
    args, kwargs, _ = json.loads(envelope["body"])
    assert messages.decode(args[0]) == messages.decode(body)
    assert envelope["properties"]["delivery_info"] == {"exchange": "", "routing_key": QUEUE}


def test_given_a_push_the_message_is_handed_to_it_and_not_pushed(redis_url):
    publisher = TaskPublisher(make_celery(Settings(redis_url=redis_url, queue_name=QUEUE)), QUEUE)
    pushed: list[tuple[str, str]] = []
    publisher.publish(one_job_body(), images=1, description="<1 jobs, 1 images>",
                      push=lambda key, message: pushed.append((key, message)))
    assert redis.Redis.from_url(redis_url).llen(QUEUE) == 0
    [(key, message)] = pushed
    assert key == QUEUE
    assert json.loads(message)["headers"]["task"] == messages.TASK_NAME
    # The next publish without one is pushed by kombu again.
    publisher.publish(one_job_body(), images=1, description="<1 jobs, 1 images>")
    assert redis.Redis.from_url(redis_url).llen(QUEUE) == 1
