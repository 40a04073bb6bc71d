"""The job-events listener on a real Redis (fakeredis's pub/sub is not the server's): one
connection, subscriptions confirmed before a watch starts, fan-out, and a lost connection."""

from __future__ import annotations

import pytest
import redis

from api.job_events import JobEvents
from inferq import keys
from inferq.redis_connection import connect
from tests.support.waiting import wait_for


@pytest.fixture
def events_and_client(redis_url):
    client = connect(redis_url)
    events = JobEvents(client)
    yield events, client
    events.close()


def subscribers(client: redis.Redis, job_id: str) -> int:
    return dict(client.pubsub_numsub(keys.job_events(job_id)))[keys.job_events(job_id).encode()]


def test_a_watch_is_subscribed_when_it_starts_and_woken_by_its_jobs_news_only(events_and_client):
    events, client = events_and_client
    with events.watch("job-a") as a, events.watch("job-a") as a2, events.watch("job-b") as b:
        assert subscribers(client, "job-a") == 1 and subscribers(client, "job-b") == 1  # one connection
        assert client.publish(keys.job_events("job-a"), "{}") == 1
        assert a.changed(5) and a2.changed(5)
        assert not b.changed(0.2)
        assert not a.changed(0.1), "news is taken once"
    wait_for(lambda: subscribers(client, "job-a") == subscribers(client, "job-b") == 0, 5, "unsubscribing")


def test_a_channel_stays_subscribed_while_any_watch_of_it_lasts(events_and_client):
    events, client = events_and_client
    with events.watch("job-a") as first:
        with events.watch("job-a"):
            pass
        client.publish(keys.job_events("job-a"), "{}")
        assert first.changed(5)
        assert subscribers(client, "job-a") == 1


def test_watches_are_woken_and_subscribed_again_when_the_connection_is_lost(events_and_client):
    events, client = events_and_client
    with events.watch("job-a") as watch:
        host, port = events._connection._sock.getsockname()[:2]  # this listener's, no other suite's
        client.client_kill(f"{host}:{port}")
        assert watch.changed(10), "woken: it may have missed news"
        wait_for(lambda: subscribers(client, "job-a") == 1, 10, "the subscription to come back")
        client.publish(keys.job_events("job-a"), "{}")
        assert watch.changed(5)
