"""redis-py's calls below its command methods, as inferq makes them (REDIS_PY_LOW_LEVEL), on a real
Redis: this fails, naming them, when redis-py moves."""

from __future__ import annotations

import importlib.metadata

import pytest
import redis

from inferq.redis_connection import REDIS_PY_LOW_LEVEL, TESTED_REDIS_PY

INSTALLED = importlib.metadata.version("redis")
RECHECK = (f"inferq was written for redis-py {', '.join(TESTED_REDIS_PY)} and relies on "
           f"{'; '.join(REDIS_PY_LOW_LEVEL)}; redis-py {INSTALLED} is installed: re-check those, then "
           "extend TESTED_REDIS_PY")
MISSING_SHA = "0" * 40


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_the_installed_redis_py_is_one_inferq_was_written_for():
    assert ".".join(INSTALLED.split(".")[:2]) in TESTED_REDIS_PY, RECHECK


def test_a_command_sent_now_is_answered_when_read_later_in_the_order_sent(client):
    script = client.register_script("return ARGV[1] .. KEYS[1]")
    script(keys=["k"], args=["loaded-"])
    connection = client.connection_pool.get_connection()
    try:
        connection.send_command("EVALSHA", script.sha, 1, "first", "a-")
        connection.send_command("EVALSHA", script.sha, 1, "second", "b-")
        client.set("meanwhile", 1)  # another connection's work between send and read
        assert connection.read_response() == b"a-first", RECHECK
        assert connection.read_response() == b"b-second", RECHECK
        connection.send_command("EVALSHA", MISSING_SHA, 0)
        with pytest.raises(redis.exceptions.NoScriptError):
            connection.read_response()
        connection.send_command("PING")
        assert connection.read_response() in (b"PONG", "PONG", True), RECHECK  # nothing left unread
    finally:
        client.connection_pool.release(connection)


def test_packed_commands_are_read_back_one_by_one_by_parse_response(client):
    client.rpush("bell", "ring")
    script = client.register_script("return redis.call('GET', KEYS[1])")
    client.set("claimed", "message")
    script(keys=["claimed"])
    connection = client.connection_pool.get_connection()
    try:
        commands = [("BLPOP", "bell", 1), ("EVALSHA", script.sha, 1, "claimed")]
        connection.send_packed_command(connection.pack_commands(commands))
        assert list(client.parse_response(connection, "BLPOP")) == [b"bell", b"ring"], RECHECK
        assert client.parse_response(connection, "EVALSHA") == b"message", RECHECK

        connection.send_packed_command(connection.pack_commands([("BLPOP", "bell", 0.05),
                                                                 ("EVALSHA", MISSING_SHA, 0)]))
        assert client.parse_response(connection, "BLPOP") is None, RECHECK  # timed out: nothing rang
        with pytest.raises(redis.exceptions.NoScriptError):
            client.parse_response(connection, "EVALSHA")
    finally:
        client.connection_pool.release(connection)


def test_a_subscribed_connection_reads_its_messages_as_lists(client):
    connection = client.connection_pool.get_connection()
    try:
        connection.send_command("SUBSCRIBE", "inferq:job-events:contract")
        assert connection.can_read(timeout=2), RECHECK
        confirmed = connection.read_response(push_request=True)
        assert [confirmed[0], confirmed[1]] == [b"subscribe", b"inferq:job-events:contract"], RECHECK
        assert not connection.can_read(timeout=0.05), RECHECK
        client.publish("inferq:job-events:contract", b"done")
        assert connection.can_read(timeout=2), RECHECK
        assert connection.read_response(push_request=True) == [
            b"message", b"inferq:job-events:contract", b"done"], RECHECK
    finally:
        connection.disconnect()  # a subscribed connection never goes back to the pool
        client.connection_pool.release(connection)
