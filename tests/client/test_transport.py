"""The client rides out refusals and dropped connections, and says clearly when it gives up."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from inferq.client import Client, HttpError, Interrupted, RetryPolicy, Unreachable
from launcher.processes import free_port
from tests.client.fake_service import DROP, numbered_images
from tests.support.waiting import wait_for

QUEUE_FULL = (503, {"Retry-After": "0"}, orjson.dumps({"error": "queue is full"}))


def test_503s_are_asked_again_until_taken_and_the_job_is_sent_once(service, client):
    service.script.extend([QUEUE_FULL, QUEUE_FULL])
    retries: list[str] = []
    client.transport.on_retry = retries.append
    job = client.submit(numbered_images(3))
    assert [answer.label for answer in job.wait(10)] == [0, 1, 2]
    assert len(service.posts) == 1 and service.requests >= 4
    assert retries == ["POST /jobs answered 503: queue is full"] * 2


def test_retry_after_is_waited_for(service, client):
    service.script.append((503, {"Retry-After": "0.4"}, orjson.dumps({"error": "queue is full"})))
    started = time.monotonic()
    client.submit(numbered_images(1))
    assert time.monotonic() - started >= 0.4


def test_a_dropped_connection_is_tried_again(service, client):
    service.script.extend([DROP, DROP])
    assert [answer.label for answer in client.recognize(numbered_images(2))] == [0, 1]
    assert len(service.posts) == 1


def test_an_unreachable_service_is_given_up_on_with_what_and_where():
    client = Client(f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(patience_s=0.3, backoff_s=0.05))
    with pytest.raises(Unreachable, match=r"POST http://127\.0\.0\.1:\d+/jobs: ConnectionRefusedError.*gave up"):
        client.submit(numbered_images(1))


def test_an_error_status_is_an_error_with_the_services_own_message(service, client):
    service.script.append((400, {}, orjson.dumps({"error": "image 0 ('x'): the upload is not an image"})))
    with pytest.raises(HttpError, match=r"POST /recognize answered 400: image 0 \('x'\): the upload is not an image"
                       ) as caught:
        client.recognize(numbered_images(1))
    assert caught.value.status == 400


def test_the_api_key_is_sent_as_a_bearer_token(service):
    Client(service.url, api_key="s3cret").recognize(numbered_images(1))
    assert service.authorization == "Bearer s3cret"


def test_stop_ends_a_wait_at_once(service, client):
    service.answering.clear()
    job = client.submit(numbered_images(1))
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            job.wait()
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            raised.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_for(lambda: service.requests >= 3, 5, "the client to poll")
    client.stop()
    waiter.join(5)
    assert not waiter.is_alive() and isinstance(raised[0], Interrupted)
