"""Fair share within a queue on a real Redis, as workers claim: each tenant in proportion to its
weight, in items; in order within a tenant; a restored message back before its tenant's later ones;
a tenant alone taking everything; interactive work still before bulk."""

from __future__ import annotations

import json

import redis
from kombu import Connection, Queue

from inferq import broker, keys
from inferq.broker import bell, inflight, tenant_members, tenant_queue, tenant_ring
from inferq.jobs import JobStore
from inferq.settings import Settings
from tests.integration.test_claim import BULK, INTERACTIVE, push, take


def push_for(client: redis.Redis, queue: str, tenant: str, body: str, *, items: int = 1,
             queued_at: float | None = None) -> broker.Envelope:
    envelope = broker.envelope(queue, [[body], {}, {}], headers={}, properties={}, tenant=tenant, items=items,
                               queued_at=queued_at)
    JobStore(client, result_ttl_s=60, depth_limits=Settings().depth_limits).enqueue(envelope)
    return envelope


def bodies(taken) -> list[str]:
    return [body for _, body, _, _ in taken]


def test_a_tenant_queueing_ten_times_more_gets_its_weights_share_not_ten_times(redis_url):
    client = redis.Redis.from_url(redis_url)
    for n in range(20):
        push_for(client, BULK, "flood", f"flood-{n}")
    for n in range(2):
        push_for(client, BULK, "small", f"small-{n}")
    # A quantum of one item, each message's cost: turns alternate while both have work; then the
    # flood alone has all of it.
    taken = take(redis_url, 22, options={broker.FAIR_SHARE_QUANTUM_OPTION: 1})
    order = bodies(taken)
    assert sorted(order[:4]) == ["flood-0", "flood-1", "small-0", "small-1"]
    assert [body for body in order if body.startswith("flood")] == [f"flood-{n}" for n in range(20)]
    assert [body for body in order if body.startswith("small")] == ["small-0", "small-1"]
    assert {queue for queue, *_ in taken} == {BULK}  # routed as the queue's, whatever list held it
    assert [info[broker.QUEUE_LENGTH] for *_, info in taken] == list(range(21, -1, -1))
    assert client.llen(tenant_ring(BULK)) == client.scard(tenant_members(BULK)) == 0
    assert client.llen(bell(BULK)) == 0


def test_weights_share_the_queue_in_items(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.hset(keys.TENANT_WEIGHTS, mapping={"heavy": 3, "light": 1})
    for n in range(12):
        push_for(client, BULK, "heavy", f"heavy-{n}", items=64)
        push_for(client, BULK, "light", f"light-{n}", items=64)
    order = bodies(take(redis_url, 16, options={broker.FAIR_SHARE_QUANTUM_OPTION: 64}))
    assert sum(body.startswith("heavy") for body in order) == 12
    assert sum(body.startswith("light") for body in order) == 4


def test_a_tenant_of_small_messages_takes_as_many_items_not_as_many_messages(redis_url):
    client = redis.Redis.from_url(redis_url)
    for n in range(4):
        push_for(client, BULK, "big", f"big-{n}", items=64)
    for n in range(32):
        push_for(client, BULK, "small", f"small-{n}", items=8)
    order = bodies(take(redis_url, 18, options={broker.FAIR_SHARE_QUANTUM_OPTION: 64}))
    # Within the first two rounds: two 64-item messages for sixteen of 8 items.
    assert sum(body.startswith("big") for body in order) == 2
    assert sum(body.startswith("small") for body in order) == 16


def test_a_tenant_alone_takes_everything_and_interactive_work_still_goes_first(redis_url):
    client = redis.Redis.from_url(redis_url)
    for n in range(3):
        push_for(client, BULK, "only", f"bulk-{n}")
    push_for(client, INTERACTIVE, "other", "interactive-0")
    push(client, INTERACTIVE, "untenanted")  # a producer that knows no tenants: the queue's own list
    assert bodies(take(redis_url, 5)) == ["untenanted", "interactive-0", "bulk-0", "bulk-1", "bulk-2"]


def test_bulk_work_of_a_tenant_waiting_past_its_bound_is_aged_as_before(redis_url):
    client = redis.Redis.from_url(redis_url)
    push_for(client, BULK, "old", "bulk-old", queued_at=1.0)
    for n in range(2):
        push_for(client, INTERACTIVE, "busy", f"interactive-{n}")
    taken = take(redis_url, 3, options={broker.BULK_MAX_WAIT_OPTION: 5})
    assert bodies(taken) == ["bulk-old", "interactive-0", "interactive-1"]


def test_a_restored_message_comes_back_before_its_tenants_later_ones(redis_url):
    client = redis.Redis.from_url(redis_url)
    for n in range(3):
        push_for(client, BULK, "a", f"a-{n}")
    held: list = []
    options = {"priority_steps": [0], "body_encoding": None}
    with (Connection(redis_url, transport=broker.Transport, transport_options=options) as connection,
          connection.Consumer([Queue(BULK)], callbacks=[lambda _body, message: held.append(message)],
                              accept=["json"])):
        connection.drain_events(timeout=5)
        assert json.loads(held[0].body)[0][0] == "a-0"
        assert client.lrange(inflight(BULK), 0, -1) == [held[0].delivery_tag.encode()]
    # The channel closed holding it: kombu restored it onto the queue's own list, taken first.
    assert client.llen(inflight(BULK)) == 0 and client.hlen("unacked") == 0
    assert client.llen(BULK) == 1 and client.llen(tenant_queue(BULK, "a")) == 2
    assert bodies(take(redis_url, 3)) == ["a-0", "a-1", "a-2"]


def test_a_tenant_whose_list_emptied_under_it_leaves_the_ring(redis_url):
    client = redis.Redis.from_url(redis_url)
    taken_back = push_for(client, BULK, "gone", "gone-0")
    push_for(client, BULK, "here", "here-0")
    client.lrem(taken_back.queue_key, 1, taken_back.raw)  # as JobStore.take_back does
    assert bodies(take(redis_url, 1)) == ["here-0"]
    assert client.llen(tenant_ring(BULK)) == 0 and client.scard(tenant_members(BULK)) == 0


def test_the_backlog_an_autoscaler_reads_counts_every_tenants_messages_and_follows_the_claims(redis_url):
    client = redis.Redis.from_url(redis_url)
    backlog = broker.backlog(BULK)
    for n in range(6):
        push_for(client, BULK, "flood", f"flood-{n}")
    push_for(client, BULK, "small", "small-0")
    push(client, BULK, "untenanted")  # a producer that knows no tenants: no backlog item of its own
    # No worker yet (scaled to zero): what was pushed with the messages is what an autoscaler sees,
    # though no list it could name holds them all.
    assert client.llen(backlog) == 7
    assert client.llen(BULK) + client.llen(tenant_queue(BULK, "flood")) + client.llen(
        tenant_queue(BULK, "small")) == 8
    client.lpush(backlog, *[1] * 5)  # items whose messages went elsewhere (a take-back, a hand)
    taken = take(redis_url, 3)
    assert client.llen(backlog) == 5 == taken[-1][3][broker.QUEUE_LENGTH]
    client.delete(backlog)  # and the other way: messages whose items were lost
    take(redis_url, 1)
    assert client.llen(backlog) == 4
    take(redis_url, 4)
    assert not client.exists(backlog)
