"""The worker's claim on a real Redis: interactive messages first, bells kept, nothing taken unrecorded."""

from __future__ import annotations

import json
import time

import redis
from kombu import Connection, Queue

from inferq import broker, priorities
from inferq.broker import Envelope, bell

BASE = "claimq"
INTERACTIVE, BULK = priorities.queues(BASE)


def push(client: redis.Redis, queue: str, body: str, *, ring: bool = True) -> Envelope:
    envelope = broker.envelope(queue, [[body], {}, {}], headers={}, properties={})
    client.lpush(queue, envelope.raw)
    if ring:
        client.lpush(bell(queue), 1)
    return envelope


def take(redis_url: str, count: int, timeout_s: float = 5) -> list[tuple[str, str, dict, dict]]:
    """Claim ``count`` messages from both queues as a worker does: (queue, body, unacked hash,
    delivery info) each."""
    taken: list[tuple[str, str, dict, dict]] = []
    client = redis.Redis.from_url(redis_url)

    def on_message(body: object, message) -> None:
        unacked = {tag.decode(): json.loads(value) for tag, value in client.hgetall("unacked").items()}
        taken.append((message.delivery_info["routing_key"], json.loads(message.body)[0][0], unacked,
                      message.delivery_info))
        message.ack()

    options = {"priority_steps": [0], "body_encoding": None}
    # kombu's queue cycle would take bulk first half the time: the claim must not.
    queues = [Queue(BULK), Queue(INTERACTIVE)]
    with (Connection(redis_url, transport=broker.Transport, transport_options=options) as connection,
          connection.Consumer(queues, callbacks=[on_message], accept=["json"])):
        deadline = time.monotonic() + timeout_s
        while len(taken) < count and time.monotonic() < deadline:
            connection.drain_events(timeout=timeout_s)
    return taken


def test_interactive_messages_are_taken_before_bulk_ones_queued_earlier(redis_url):
    client = redis.Redis.from_url(redis_url)
    for n in range(3):
        push(client, BULK, f"bulk-{n}")
    push(client, INTERACTIVE, "interactive-0")
    push(client, INTERACTIVE, "interactive-1")
    taken = take(redis_url, 5)
    assert [body for _, body, _, _ in taken] == ["interactive-0", "interactive-1", "bulk-0", "bulk-1", "bulk-2"]
    assert [queue for queue, _, _, _ in taken] == [INTERACTIVE, INTERACTIVE, BULK, BULK, BULK]
    # What is left behind each, in all and of the interactive kind: what the batcher decides on.
    assert [(info[broker.QUEUE_LENGTH], info[broker.INTERACTIVE_LEFT]) for *_, info in taken] == [
        (4, 1), (3, 0), (2, 0), (1, 0), (0, 0)]
    assert client.llen(INTERACTIVE) == client.llen(BULK) == 0
    assert client.llen(bell(INTERACTIVE)) == client.llen(bell(BULK)) == 0


def test_each_message_is_recorded_as_unacknowledged_before_it_is_handed_over(redis_url):
    client = redis.Redis.from_url(redis_url)
    pushed = push(client, BULK, "only")
    [(_, _, unacked, _)] = take(redis_url, 1)
    tag = json.loads(pushed.raw)["properties"]["delivery_tag"]
    assert unacked[tag][0] == json.loads(pushed.raw) and unacked[tag][1:] == ["", BULK]
    assert client.hlen("unacked") == 0  # acknowledged since


def test_the_delivery_tag_is_read_from_the_envelope_whatever_its_body_or_layout_holds(redis_url):
    """The claim decodes only the envelope's tail, from its last '"properties":'. A body that
    mentions properties, and an envelope whose properties are not its last key, are recorded under
    their own delivery tags all the same."""
    client = redis.Redis.from_url(redis_url)
    tricky = push(client, BULK, '{"properties": {"delivery_tag": "not-this-one"}}')
    reordered = json.loads(broker.envelope(BULK, [["reordered"], {}, {}], headers={}, properties={}).raw)
    # Properties first and a header named like them after: the tail alone is not the properties.
    raw = json.dumps({"properties": reordered["properties"], **{k: v for k, v in reordered.items()
                                                                if k != "properties"},
                      "trailer": {"properties": 1}})
    client.lpush(BULK, raw)
    client.lpush(bell(BULK), 1)
    taken = take(redis_url, 2)
    assert [body for _, body, _, _ in taken] == ['{"properties": {"delivery_tag": "not-this-one"}}', "reordered"]
    tags = [json.loads(tricky.raw)["properties"]["delivery_tag"], reordered["properties"]["delivery_tag"]]
    assert [next(iter(unacked)) for _, _, unacked, _ in taken] == tags


def test_a_message_without_a_bell_is_taken_at_the_wait_timeout_and_given_bells(redis_url):
    """As kombu restores a dead worker's message: no bell. The next claim finds it all the same."""
    client = redis.Redis.from_url(redis_url)
    for n in range(3):
        push(client, BULK, f"restored-{n}", ring=False)
    taken = take(redis_url, 3)
    assert [body for _, body, _, _ in taken] == ["restored-0", "restored-1", "restored-2"]
    assert client.llen(BULK) == 0 and client.llen(bell(BULK)) == 0


def test_stale_bells_are_trimmed_to_the_messages_left(redis_url):
    client = redis.Redis.from_url(redis_url)
    push(client, INTERACTIVE, "one")
    client.lpush(bell(INTERACTIVE), *[1] * 5)  # bells whose messages other workers took
    push(client, INTERACTIVE, "two")
    take(redis_url, 1)
    assert client.llen(INTERACTIVE) == 1 and client.llen(bell(INTERACTIVE)) == 1
