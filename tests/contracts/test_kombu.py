"""inferq/broker.py relies on kombu's internals: this fails, naming them, when kombu moves.

Beside the version, the behaviour the seam re-creates is compared with stock kombu's on a real
Redis: the message a worker takes is recorded as unacknowledged exactly as kombu records it, and
the message the API pushes itself is one stock kombu consumes.
"""

from __future__ import annotations

import inspect
import json

import kombu
import pytest
from kombu import Connection, Queue
from kombu.transport import redis as kombu_redis

from inferq import broker
from inferq.redis_connection import connect
from tests.support.sentinel import MASTER, sentinel_group

RECHECK = (f"inferq/broker.py was written for kombu {', '.join(broker.TESTED_KOMBU)} and relies on "
           f"{'; '.join(broker.KOMBU_INTERNALS)}; kombu {kombu.__version__} is installed: re-check those, "
           "then extend TESTED_KOMBU")
QUEUE = "contract"


def test_the_installed_kombu_is_one_the_seam_was_written_for():
    assert kombu.__version__ in broker.TESTED_KOMBU, RECHECK


@pytest.mark.parametrize(("owner", "name", "parameters"), [
    (kombu_redis.Channel, "_create_client", ["self", "asynchronous"]),
    (kombu_redis.Channel, "_brpop_start", ["self", "timeout"]),
    (kombu_redis.Channel, "_brpop_read", ["self", "options"]),
    (kombu_redis.Channel, "_q_for_pri", ["self", "queue", "pri"]),
    (kombu_redis.Channel, "_flush_brpop_reauth", ["self"]),
    (kombu_redis.QoS, "append", ["self", "message", "delivery_tag"]),
    (kombu_redis.QoS, "_remove_from_indices", ["self", "delivery_tag", "pipe"]),
    (kombu_redis.QoS, "pipe_or_acquire", ["self", "pipe", "client"]),
    (kombu_redis.QoS, "restore_by_tag", ["self", "tag", "client", "leftmost"]),
    (kombu_redis.QoS, "restore_visible", ["self", "start", "num", "interval"]),
    (kombu_redis.Channel, "_restore", ["self", "message", "leftmost"]),
    (kombu.transport.virtual.Transport, "_deliver", ["self", "message", "queue"]),
    (kombu_redis.SentinelChannel, "_get_pool", ["self", "asynchronous"]),
    (kombu_redis.SentinelChannel, "_sentinel_managed_pool", ["self", "asynchronous"]),
])
def test_the_methods_the_seam_overrides_or_calls_keep_their_signatures(owner, name, parameters):
    assert list(inspect.signature(getattr(owner, name)).parameters) == parameters, RECHECK


def test_the_sentinel_channel_claims_with_ours_over_kombus_sentinel_pools():
    assert kombu_redis.SentinelChannel in broker.SentinelChannel.__mro__, RECHECK
    for name in ("_brpop_start", "_brpop_read", "_create_client"):
        assert getattr(broker.SentinelChannel, name) is getattr(broker.Channel, name), RECHECK
    for name in ("_get_pool", "_sentinel_managed_pool", "connection_class", "from_transport_options"):
        assert getattr(broker.SentinelChannel, name) is getattr(kombu_redis.SentinelChannel, name), RECHECK
    assert "master_name" in broker.SentinelChannel.from_transport_options, RECHECK


def consume_one(redis_url: str, transport: object, **options: object) -> tuple[kombu.Message, dict]:
    """Take one message off QUEUE without acknowledging it; the unacked hash as it is then."""
    taken: list[kombu.Message] = []
    options = {"priority_steps": [0], "body_encoding": None, **options}
    with Connection(redis_url, transport=transport, transport_options=options) as connection:
        with connection.Consumer(Queue(QUEUE), callbacks=[lambda _body, message: taken.append(message)],
                                 accept=["json"]):
            connection.drain_events(timeout=5)
        unacked = connect(redis_url, sentinel_master=options.get("master_name")).hgetall("unacked")
        # Closing the channel gives unacknowledged messages back: read the hash before that.
        return taken[0], {tag.decode(): json.loads(value) for tag, value in unacked.items()}


def push(redis_url: str, *bodies: str, sentinel_master: str | None = None) -> list[broker.Envelope]:
    envelopes = [broker.envelope(QUEUE, [[body], {}, {}], headers={"task": "contract"}, properties={})
                 for body in bodies]
    client = connect(redis_url, sentinel_master=sentinel_master)
    for envelope in envelopes:
        client.lpush(envelope.queue_key, envelope.raw)
    return envelopes


def test_a_taken_message_is_recorded_as_unacknowledged_as_stock_kombu_records_it(redis_url):
    [ours_pushed, _] = push(redis_url, "first", "second")
    ours, ours_unacked = consume_one(redis_url, broker.Transport)
    _, kombus_unacked = consume_one(redis_url, kombu_redis.Transport)

    assert ours.decode() == [["first"], {}, {}]
    [(tag, record)] = ours_unacked.items()
    [(_, stock_record)] = kombus_unacked.items()
    assert tag == ours.delivery_tag == json.loads(ours_pushed.raw)["properties"]["delivery_tag"], RECHECK
    # [message, exchange, routing key], the message as it was on the queue.
    assert record[0] == json.loads(ours_pushed.raw), RECHECK
    assert record[1:] == stock_record[1:] == ["", QUEUE], RECHECK
    assert record[0].keys() == stock_record[0].keys(), RECHECK
    assert ours.delivery_info[broker.QUEUE_LENGTH] == 1, "the claim tells how many messages are left"


def test_stock_kombu_reads_the_envelope_the_api_pushes(redis_url):
    [pushed] = push(redis_url, "payload")
    message, _ = consume_one(redis_url, kombu_redis.Transport)
    assert message.decode() == [["payload"], {}, {}], RECHECK
    assert message.headers == {"task": "contract"}, RECHECK
    assert message.delivery_tag == json.loads(pushed.raw)["properties"]["delivery_tag"], RECHECK


def test_the_sentinel_transport_takes_a_message_from_the_master_the_sentinels_name(tmp_path):
    with sentinel_group(tmp_path) as group:
        [pushed] = push(group.url, "via sentinel", sentinel_master=MASTER)
        message, unacked = consume_one(group.url, broker.SentinelTransport, master_name=MASTER)
    assert message.decode() == [["via sentinel"], {}, {}], RECHECK
    assert list(unacked) == [message.delivery_tag] == [json.loads(pushed.raw)["properties"]["delivery_tag"]], RECHECK


def test_every_way_kombu_takes_a_message_out_of_the_unacked_hash_goes_through_remove_from_indices():
    """The in-flight lists leave with the unacked entries only if kombu's ack, reject and restores
    all remove them by ``QoS._remove_from_indices`` (or ``restore_by_tag``, which calls it)."""
    assert "_remove_from_indices" in inspect.getsource(kombu_redis.QoS.ack), RECHECK
    assert "restore_by_tag" in inspect.getsource(kombu_redis.QoS.reject), RECHECK
    assert "_remove_from_indices" in inspect.getsource(kombu_redis.QoS.restore_by_tag), RECHECK
    for method in (kombu_redis.QoS.restore_visible, kombu_redis.QoS.restore_unacked):
        assert "restore_by_tag" in inspect.getsource(method), RECHECK


def test_kombus_sweep_restores_a_dead_workers_message_and_empties_its_in_flight_entry(redis_url):
    [pushed] = push(redis_url, "stranded")
    tag = json.loads(pushed.raw)["properties"]["delivery_tag"]
    client = connect(redis_url)
    options = {"priority_steps": [0], "body_encoding": None}
    with Connection(redis_url, transport=broker.Transport, transport_options=options) as connection:
        taken: list = []
        with connection.Consumer(Queue(QUEUE), callbacks=[lambda _body, message: taken.append(message)],
                                 accept=["json"]):
            connection.drain_events(timeout=5)
            connection.default_channel.do_restore = False  # dies holding it: nothing given back
    assert client.lrange(broker.inflight(QUEUE), 0, -1) == [tag.encode()]
    # Another worker's sweep, past the visibility timeout.
    with Connection(redis_url, transport=broker.Transport,
                    transport_options={**options, "visibility_timeout": 0}) as connection:
        connection.default_channel.qos.restore_visible(num=10, interval=1)
    assert client.llen(broker.inflight(QUEUE)) == 0 and client.hlen("unacked") == 0, RECHECK
    [restored] = client.lrange(QUEUE, 0, -1)
    assert json.loads(restored)["properties"]["delivery_tag"] == tag, RECHECK


def test_an_ack_inside_a_script_removes_what_kombus_own_ack_removes(redis_url):
    """``broker.acking`` re-makes kombu's ack in Lua (the unacked entry and its index's, with our
    in-flight entry): after one message acknowledged each way, Redis holds the same for both."""
    assert "unacked_index_key" in inspect.getsource(kombu_redis.QoS._remove_from_indices), RECHECK
    assert "hdel(self.unacked_key" in inspect.getsource(kombu_redis.QoS._remove_from_indices), RECHECK
    push(redis_url, "kombu acks", "a script acks")
    client = connect(redis_url)
    script = client.register_script(broker.acking(""))
    options = {"priority_steps": [0], "body_encoding": None}
    with Connection(redis_url, transport=broker.Transport, transport_options=options) as connection:
        taken: list = []
        with connection.Consumer(Queue(QUEUE), callbacks=[lambda _body, message: taken.append(message)],
                                 accept=["json"]):
            while len(taken) < 2:
                connection.drain_events(timeout=5)
            by_kombu, by_script = taken
            before = {key: client.type(key) for key in client.keys("*")}
            by_kombu.ack()
            acks = broker.held_messages(by_script.channel, [by_script.delivery_tag])
            script(keys=acks.keys, args=acks.args)
            for key in ("unacked", "unacked_index", broker.inflight(QUEUE)):
                assert before.get(key.encode()) is not None, RECHECK
                assert not client.exists(key), RECHECK
            broker.acked_already(by_script.channel, acks.tags)
            by_script.ack()
    assert client.llen(QUEUE) == 0, "nothing given back: both were acknowledged"
