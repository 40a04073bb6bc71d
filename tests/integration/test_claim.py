"""The worker's claim on a real Redis: interactive messages first, bulk ones within their bound,
bells kept, nothing taken unrecorded, in-flight lists kept, unreadable messages set aside."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
import redis
from kombu import Connection, Queue

from inferq import broker, keys, priorities
from inferq.broker import Envelope, bell, inflight
from inferq.jobs import Finished, JobStore, Outcome

BASE = "claimq"
INTERACTIVE, BULK = priorities.queues(BASE)


def push(client: redis.Redis, queue: str, body: str, *, ring: bool = True, queued_at: float | None = None) -> Envelope:
    envelope = broker.envelope(queue, [[body], {}, {}], headers={}, properties={}, queued_at=queued_at)
    client.lpush(queue, envelope.raw)
    if ring:
        client.lpush(bell(queue), 1)
    return envelope


def take(redis_url: str, count: int, timeout_s: float = 5, *, options: dict | None = None,
         until=None, on_each=None) -> list[tuple[str, str, dict, dict]]:
    """Claim ``count`` messages from both queues as a worker does (or until ``until(taken)``),
    calling ``on_each(body)`` after each: (queue, body, unacked hash, delivery info) each."""
    taken: list[tuple[str, str, dict, dict]] = []
    client = redis.Redis.from_url(redis_url)

    def on_message(body: object, message) -> None:
        unacked = {tag.decode(): json.loads(value) for tag, value in client.hgetall("unacked").items()}
        taken.append((message.delivery_info["routing_key"], json.loads(message.body)[0][0], unacked,
                      message.delivery_info))
        message.ack()
        if on_each:
            on_each(taken[-1][1])

    until = until or (lambda taken: len(taken) >= count)
    options = {"priority_steps": [0], "body_encoding": None, **(options or {})}
    # kombu's queue cycle would take bulk first half the time: the claim must not.
    queues = [Queue(BULK), Queue(INTERACTIVE)]
    with (Connection(redis_url, transport=broker.Transport, transport_options=options) as connection,
          connection.Consumer(queues, callbacks=[on_message], accept=["json"])):
        deadline = time.monotonic() + timeout_s
        while not until(taken) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):  # nothing came this second: look again
                connection.drain_events(timeout=min(1, timeout_s))
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


# --- unreadable messages ---------------------------------------------------------------------

#: What anything with access to Redis might push onto a queue: not JSON, JSON without properties,
#: properties without a delivery tag, routing that is not an object.
UNREADABLE = [b"\xff\x00 not a message", b'{"body": "x"}', b'{"properties": {"delivery_info": {}}}',
              b'{"properties": {"delivery_tag": "t", "delivery_info": 3}}']


def test_an_unreadable_message_is_set_aside_and_the_claim_takes_the_next(redis_url):
    client = redis.Redis.from_url(redis_url)
    for raw in UNREADABLE:  # older than the good one: popped first
        client.lpush(INTERACTIVE, raw)
        client.lpush(bell(INTERACTIVE), 1)
    good = push(client, INTERACTIVE, "good")
    [(queue, body, unacked, info)] = take(redis_url, 1)
    assert (queue, body) == (INTERACTIVE, "good")
    assert list(unacked) == [json.loads(good.raw)["properties"]["delivery_tag"]]
    assert client.lrange(keys.DEAD_LETTERS, 0, -1)[::-1] == UNREADABLE  # as they were, oldest last
    assert client.llen(INTERACTIVE) == 0 and client.hlen("unacked") == 0


def test_a_claim_that_finds_only_unreadable_messages_answers_nothing_and_loses_none(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.lpush(BULK, UNREADABLE[0])
    client.lpush(bell(BULK), 1)
    assert take(redis_url, 1, timeout_s=2) == []
    assert client.lrange(keys.DEAD_LETTERS, 0, -1) == [UNREADABLE[0]]
    # The worker carries on: the next message is taken.
    push(client, BULK, "next")
    assert [body for _, body, _, _ in take(redis_url, 1)] == ["next"]


def test_a_message_whose_properties_read_but_whose_whole_does_not_is_set_aside_not_redelivered(redis_url):
    """The claim decodes only the envelope's tail: the worker finds the rest broken, and sets the
    message aside rather than leave it unacknowledged to fail every worker again."""
    client = redis.Redis.from_url(redis_url)
    broken = "{broken " + broker.envelope(BULK, [["x"], {}, {}], headers={}, properties={}).raw[1:]
    client.lpush(BULK, broken)
    client.lpush(bell(BULK), 1)
    push(client, BULK, "after")
    assert [body for _, body, _, _ in take(redis_url, 1)] == ["after"]
    assert client.lrange(keys.DEAD_LETTERS, 0, -1) == [broken.encode()]
    assert client.hlen("unacked") == client.zcard("unacked_index") == 0 and client.llen(inflight(BULK)) == 0


# --- bulk work under interactive load --------------------------------------------------------

def test_bulk_work_waiting_past_its_bound_is_taken_before_interactive_work_one_claim_in_two(redis_url):
    client = redis.Redis.from_url(redis_url)
    push(client, BULK, "old-0", queued_at=time.time() - 60)
    push(client, BULK, "old-1", queued_at=time.time() - 60)
    push(client, BULK, "fresh", queued_at=time.time())
    for n in range(4):
        push(client, INTERACTIVE, f"interactive-{n}", queued_at=time.time())
    taken = take(redis_url, 7, options={broker.BULK_MAX_WAIT_OPTION: 30})
    assert [body for _, body, _, _ in taken] == [
        "old-0", "interactive-0", "old-1", "interactive-1", "interactive-2", "interactive-3", "fresh"]


def test_bulk_work_without_a_queued_at_header_counts_as_old(redis_url):
    """As another producer would push it: taken as overdue rather than starved."""
    client = redis.Redis.from_url(redis_url)
    push(client, INTERACTIVE, "interactive", queued_at=time.time())
    push(client, BULK, "unstamped")
    taken = take(redis_url, 2, options={broker.BULK_MAX_WAIT_OPTION: 30})
    assert [body for _, body, _, _ in taken] == ["unstamped", "interactive"]


def test_with_interactive_work_always_queued_a_bulk_message_is_taken_once_past_its_bound(redis_url):
    client = redis.Redis.from_url(redis_url)
    queued = time.time()
    push(client, BULK, "bulk", queued_at=queued)
    for n in range(2):
        push(client, INTERACTIVE, f"interactive-{n}", queued_at=time.time())

    def refill(body: str) -> None:  # every interactive message taken is replaced: never none queued
        if body != "bulk":
            push(client, INTERACTIVE, "more", queued_at=time.time())

    bound_s = 0.5
    taken = take(redis_url, 0, timeout_s=15, options={broker.BULK_MAX_WAIT_OPTION: bound_s}, on_each=refill,
                 until=lambda taken: any(body == "bulk" for _, body, _, _ in taken))
    bodies = [body for _, body, _, _ in taken]
    assert "bulk" in bodies, f"bulk work not taken in {len(bodies)} claims under interactive load"
    *_, info = taken[bodies.index("bulk")]
    assert info[broker.INTERACTIVE_LEFT] == 2, "interactive work was waiting when bulk work was taken"
    assert client.llen(BULK) == 0


# --- work in flight --------------------------------------------------------------------------

def test_each_queue_lists_the_messages_held_unacknowledged_until_acked_rejected_or_restored(redis_url):
    client = redis.Redis.from_url(redis_url)
    pushed = [push(client, BULK, body) for body in ("acked", "rejected", "held")]
    tags = [json.loads(envelope.raw)["properties"]["delivery_tag"] for envelope in pushed]
    held: list = []
    options = {"priority_steps": [0], "body_encoding": None}
    with (Connection(redis_url, transport=broker.Transport, transport_options=options) as connection,
          connection.Consumer([Queue(BULK)], callbacks=[lambda _body, message: held.append(message)],
                              accept=["json"])):
        while len(held) < 3:
            connection.drain_events(timeout=5)
        assert client.lrange(inflight(BULK), 0, -1)[::-1] == [tag.encode() for tag in tags]
        held[0].ack()
        held[1].reject(requeue=True)
        assert client.lrange(inflight(BULK), 0, -1) == [tags[2].encode()]
        assert client.llen(BULK) == 1  # the rejected one, back
    # The channel closed with one held: kombu gives it back, and it leaves the in-flight list.
    assert client.llen(inflight(BULK)) == 0 and client.hlen("unacked") == 0
    assert sorted(json.loads(raw)["properties"]["delivery_tag"] for raw in client.lrange(BULK, 0, -1)) == sorted(
        tags[1:])


def test_the_sweep_takes_out_in_flight_entries_whose_messages_are_no_longer_held(redis_url):
    """Left by whatever removed unacked entries another way, they would keep a worker up for ever."""
    client = redis.Redis.from_url(redis_url)
    push(client, BULK, "held")
    options = {"priority_steps": [0], "body_encoding": None}
    held: list = []
    with (Connection(redis_url, transport=broker.Transport, transport_options=options) as connection,
          connection.Consumer([Queue(BULK)], callbacks=[lambda _body, message: held.append(message)],
                              accept=["json"])):
        connection.drain_events(timeout=5)
        client.lpush(inflight(BULK), "stale-tag")
        connection.default_channel.qos.restore_visible(num=10, interval=1)
        assert client.lrange(inflight(BULK), 0, -1) == [held[0].delivery_tag.encode()]
        held[0].ack()
    assert client.llen(inflight(BULK)) == 0


def test_acks_held_together_reach_redis_in_one_transaction_as_the_block_ends(redis_url):
    client = redis.Redis.from_url(redis_url)
    pushed = [push(client, BULK, body) for body in ("first", "second", "alone")]
    tags = [json.loads(envelope.raw)["properties"]["delivery_tag"] for envelope in pushed]
    held: list = []
    options = {"priority_steps": [0], "body_encoding": None}
    with (Connection(redis_url, transport=broker.Transport, transport_options=options) as connection,
          connection.Consumer([Queue(BULK)], callbacks=[lambda _body, message: held.append(message)],
                              accept=["json"])):
        while len(held) < 3:
            connection.drain_events(timeout=5)
        qos = held[0].channel.qos
        transactions = client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)
        with broker.acks_together(held[0].channel):
            held[0].ack()
            held[1].ack()
            # Off the channel's books at once, still unacknowledged in Redis until the block ends.
            assert set(qos._delivered) - qos._dirty == {tags[2]} and client.hlen("unacked") == 3
        assert client.info("commandstats")["cmdstat_exec"]["calls"] == transactions + 1
        assert [tag.decode() for tag in client.hkeys("unacked")] == [tags[2]]
        assert client.lrange(inflight(BULK), 0, -1) == [tags[2].encode()]
        assert client.zrange("unacked_index", 0, -1) == [tags[2].encode()]
        with broker.acks_together(held[2].channel):
            pass  # nothing held: nothing sent
        assert client.info("commandstats")["cmdstat_exec"]["calls"] == transactions + 1
        held[2].ack()  # outside a block: on its own, as kombu sends it
        assert client.hlen("unacked") == 0 and client.llen(inflight(BULK)) == 0
    assert client.llen(BULK) == 0  # none given back when the channel closed: all were acknowledged
    assert broker.acks_together(object()).__enter__() is None  # another transport's channel: nothing held


def test_a_synchronous_get_claims_as_the_consumer_does_recorded_unacknowledged_and_in_flight_until_acked(redis_url):
    """kombu's ``Queue.get`` (how a worker takes interactive work between a long batch's calls)
    takes by the claim script: tenants' lists included, never unrecorded, with what is left."""
    client = redis.Redis.from_url(redis_url)
    push(client, INTERACTIVE, "own-list")
    tenant = broker.envelope(INTERACTIVE, [["tenant-list"], {}, {}], headers={}, properties={}, tenant="people",
                             items=1)
    client.lpush(tenant.queue_key, tenant.raw)
    client.lpush(broker.tenant_ring(INTERACTIVE), "people")
    client.sadd(broker.tenant_members(INTERACTIVE), "people")
    options = {"priority_steps": [0], "body_encoding": None}
    with Connection(redis_url, transport=broker.Transport, transport_options=options) as connection:
        queue = Queue(INTERACTIVE, channel=connection.default_channel)
        first, second = queue.get(accept=["json"]), queue.get(accept=["json"])
        assert queue.get(accept=["json"]) is None
        assert [json.loads(message.body)[0][0] for message in (first, second)] == ["own-list", "tenant-list"]
        assert [message.delivery_info[broker.INTERACTIVE_LEFT] for message in (first, second)] == [1, 0]
        assert set(client.hkeys("unacked")) == {first.delivery_tag.encode(), second.delivery_tag.encode()}
        assert client.llen(inflight(INTERACTIVE)) == 2
        first.ack()
        second.reject(requeue=True)
        assert client.hkeys("unacked") == [] and client.llen(inflight(INTERACTIVE)) == 0
        assert client.llen(INTERACTIVE) == 1  # the rejected one, back on the queue


# --- acks inside the finish --------------------------------------------------------------------

def hold(redis_url: str, client: redis.Redis, bodies: list[str], then) -> None:
    """Claim a message per body as a worker does and call ``then(messages)``; then the worker dies
    (its channel gives nothing back), whatever ``then`` did."""
    for body in bodies:
        push(client, INTERACTIVE, body)
    held: list = []
    options = {"priority_steps": [0], "body_encoding": None}
    with (Connection(redis_url, transport=broker.Transport, transport_options=options) as connection,
          connection.Consumer([Queue(INTERACTIVE)], callbacks=[lambda _body, message: held.append(message)],
                              accept=["json"])):
        while len(held) < len(bodies):
            connection.drain_events(timeout=5)
        try:
            then(held)
        finally:
            connection.default_channel.do_restore = False


def sweep(redis_url: str) -> None:
    """Another worker's sweep, past the visibility timeout: what it finds unacknowledged goes back."""
    options = {"priority_steps": [0], "body_encoding": None, "visibility_timeout": 0}
    with Connection(redis_url, transport=broker.Transport, transport_options=options) as connection:
        connection.default_channel.qos.restore_visible(num=10, interval=1)


def finished(job_id: str) -> Finished:
    return Finished(job_id, 1, "claimq", priorities.INTERACTIVE, None, Outcome.done({"outputs": {}}))


def test_a_finish_that_acknowledges_leaves_nothing_to_deliver_again_when_its_worker_dies_after_it(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=60, depth_limits={})

    def finish(held: list) -> None:
        acks = broker.held_messages(held[0].channel, [message.delivery_tag for message in held])
        assert acks is not None
        store.finish([finished("one"), finished("two")], acks=acks)
        # Outcomes and acks in the same step: nothing of the batch is left unacknowledged.
        assert client.hgetall(keys.job("one"))[b"status"] == b"done"
        assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0
        assert client.llen(inflight(INTERACTIVE)) == 0

    hold(redis_url, client, ["first", "second"], finish)  # dies before kombu's own ack
    sweep(redis_url)
    assert client.llen(INTERACTIVE) == 0 and client.hlen("unacked") == 0


def test_a_batch_whose_finish_fails_is_delivered_again_with_every_message(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=60, depth_limits={})
    client.set(keys.job("two"), "not a record")  # the script fails at its second job

    def finish(held: list) -> None:
        acks = broker.held_messages(held[0].channel, [message.delivery_tag for message in held])
        with pytest.raises(redis.ResponseError):
            store.finish([finished("one"), finished("two")], acks=acks)
        assert client.hlen("unacked") == 2 and client.llen(inflight(INTERACTIVE)) == 2

    hold(redis_url, client, ["first", "second"], finish)
    sweep(redis_url)
    assert sorted(json.loads(json.loads(raw)["body"])[0][0] for raw in client.lrange(INTERACTIVE, 0, -1)) == [
        "first", "second"]
    assert client.hlen("unacked") == 0


def test_a_message_held_but_not_finished_is_delivered_again(redis_url):
    client = redis.Redis.from_url(redis_url)
    hold(redis_url, client, ["unfinished"], lambda held: None)
    sweep(redis_url)
    assert client.llen(INTERACTIVE) == 1


def test_acks_after_an_acknowledging_finish_only_take_the_messages_off_the_books(redis_url):
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=60, depth_limits={})

    def finish_then_ack(held: list) -> None:
        channel = held[0].channel
        acks = broker.held_messages(channel, [message.delivery_tag for message in held])
        store.finish([finished("one")], acks=acks)
        removals = client.info("commandstats").get("cmdstat_hdel", {}).get("calls", 0)
        broker.acked_already(channel, acks.tags)
        for message in held:
            message.ack()
        assert client.info("commandstats").get("cmdstat_hdel", {}).get("calls", 0) == removals
        assert set(channel.qos._delivered) <= channel.qos._dirty  # off the books (kombu drops them lazily)
        assert not channel.qos._acked_already
        channel.do_restore = True  # a clean close: it gives back what it still holds, which is nothing

    hold(redis_url, client, ["first", "second"], finish_then_ack)
    assert client.llen(INTERACTIVE) == 0 and client.hlen("unacked") == 0


def test_only_messages_this_transport_holds_are_acknowledged_by_a_script(redis_url):
    assert broker.held_messages(object(), ["tag"]) is None  # another transport's channel
    client = redis.Redis.from_url(redis_url)

    def unknown_tag(held: list) -> None:
        assert broker.held_messages(held[0].channel, [held[0].delivery_tag, "not-held"]) is None
        held[0].ack()

    hold(redis_url, client, ["first"], unknown_tag)
