"""The job-events listener on a real Redis (fakeredis's pub/sub is not the server's): one
connection, subscriptions confirmed before a watch starts, fan-out, and a lost connection."""

from __future__ import annotations

import uuid

import pytest
import redis

from api.queue.job_events import JobEvents
from inferq import keys
from inferq.redis_connection import connect
from tests.support.waiting import wait_for


@pytest.fixture
def events_and_client(redis_url):
    client = connect(redis_url)
    events = JobEvents(client)
    yield events, client
    events.close()


@pytest.fixture
def ids() -> tuple[str, str]:
    """Two job ids of this test's own: channels are the server's, shared by every suite using it."""
    return f"job-a-{uuid.uuid4()}", f"job-b-{uuid.uuid4()}"


def subscribers(client: redis.Redis, job_id: str) -> int:
    return dict(client.pubsub_numsub(keys.job_events(job_id)))[keys.job_events(job_id).encode()]


def test_a_watch_is_subscribed_when_it_starts_and_woken_by_its_jobs_news_only(events_and_client, ids):
    events, client = events_and_client
    job_a, job_b = ids
    with events.watch(job_a) as a, events.watch(job_a) as a2, events.watch(job_b) as b:
        assert subscribers(client, job_a) == 1 and subscribers(client, job_b) == 1  # one connection
        assert client.publish(keys.job_events(job_a), "{}") == 1
        assert a.changed(5) and a2.changed(5)
        assert not b.changed(0.2)
        assert not a.changed(0.1), "news is taken once"
    wait_for(lambda: subscribers(client, job_a) == subscribers(client, job_b) == 0, 5, "unsubscribing")


def test_a_channel_stays_subscribed_while_any_watch_of_it_lasts(events_and_client, ids):
    events, client = events_and_client
    job_a, job_b = ids
    with events.watch(job_a) as first:
        with events.watch(job_a):
            pass
        client.publish(keys.job_events(job_a), "{}")
        assert first.changed(5)
        assert subscribers(client, job_a) == 1


def test_watches_are_woken_and_subscribed_again_when_the_connection_is_lost(events_and_client, ids):
    events, client = events_and_client
    job_a, job_b = ids
    with events.watch(job_a) as watch:
        host, port = events._connection._sock.getsockname()[:2]  # this listener's, no other suite's
        client.client_kill(f"{host}:{port}")
        assert watch.changed(10), "woken: it may have missed news"
        wait_for(lambda: subscribers(client, job_a) == 1, 10, "the subscription to come back")
        client.publish(keys.job_events(job_a), "{}")
        assert watch.changed(5)
