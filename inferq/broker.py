"""kombu's Redis transport, made to lose no message when a worker dies: the one place inferq
depends on kombu's internals.

Written for the kombu versions in :data:`TESTED_KOMBU`; :func:`check_kombu` refuses any other at
start-up, and ``tests/contracts/test_kombu.py`` fails, naming what to re-check, when kombu moves.
The internals used are listed in :data:`KOMBU_INTERNALS`.

- **Taking a message.** kombu takes a message with BRPOP, which removes it from the queue, and
  only then records it as unacknowledged (the ``unacked`` hash, from which messages of dead workers
  are restored after the visibility timeout). A worker killed between the two loses the message.
  This channel waits with BLMOVE from the queue onto itself, which blocks until a message is there
  but leaves the list as it was, then takes the message and records it in one Lua script, so a
  message is always in the queue or in the unacked hash. Both commands go to Redis in one write
  and Redis runs the script the moment BLMOVE returns: one round trip a message, as with BRPOP.
  The script also tells how many messages are still queued behind this one
  (``delivery_info["queue_length"]``), which the batcher uses to decide whether to wait for more.
  It applies to a channel consuming one queue with one priority level, as inferq's workers do;
  anything else falls back to kombu's own way.
- **Clients.** kombu builds a new ``redis.Redis`` for every ack and bookkeeping call, and redis-py
  fills its response-callback table in each client's constructor. The clients share one
  connection pool, so one client serves every call; it is rebuilt when kombu replaces the pool
  (after a fork).
- **Messages the API pushes itself.** :func:`envelope` lays out a task message as this transport
  keeps it in Redis, so that the API can push it in the same Lua script that admits its jobs.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from queue import Empty

import kombu
import orjson
import redis
from kombu.serialization import dumps as serialize
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import loads

#: The kombu versions this module was written and tested for.
TESTED_KOMBU = ("5.7.0",)

#: What of kombu's this module relies on beyond its public API, for the contract test.
KOMBU_INTERNALS = (
    "Channel._create_client", "Channel._brpop_start", "Channel._brpop_read", "Channel._queue_cycle",
    "Channel._in_poll", "Channel._flush_brpop_reauth", "Channel._q_for_pri", "Channel.unacked_key",
    "Channel.unacked_index_key", "Channel.priority_steps", "Channel.global_keyprefix",
    "Connection._deliver", "QoS.append", "the unacked hash's [message, exchange, routing key] layout",
    "the message layout in the queue (envelope)",
)


class UntestedKombu(RuntimeError):
    """kombu is a version this module was not written for."""


def check_kombu() -> None:
    """Refuse to run on a kombu this module was not tested with: a change in its internals could
    lose messages silently rather than fail."""
    if kombu.__version__ not in TESTED_KOMBU:
        raise UntestedKombu(
            f"kombu {kombu.__version__} is installed, but inferq.broker was written for kombu "
            f"{', '.join(TESTED_KOMBU)} and relies on its internals ({', '.join(KOMBU_INTERNALS)}); "
            "install a tested version (pip install -e .) or re-check them and extend TESTED_KOMBU")


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A message as kombu's Redis transport keeps it: the list it goes on and its JSON."""

    queue_key: str
    raw: str


def envelope(queue: str, body: object, *, headers: dict, properties: dict) -> Envelope:
    """The message kombu's Producer would push onto ``queue`` for ``body`` (JSON-serialized), as
    the default exchange routes it, with priority 0 and no second encoding of the body."""
    content_type, content_encoding, data = serialize(body, serializer="json")
    message = {
        "body": data,
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": None,
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return Envelope(queue, orjson.dumps(message).decode())


# Pops the message BLMOVE saw (or another, if a worker beside us was faster) and records it as
# unacknowledged exactly as kombu's QoS.append does: index scored by time, hash of
# [message, exchange, routing key] by delivery tag. Answers the message and the queue's length.
_CLAIM = """
local raw = redis.call('RPOP', KEYS[1])
if not raw then
  return false
end
local properties = cjson.decode(raw)['properties']
local tag = properties['delivery_tag']
local info = properties['delivery_info']
redis.call('ZADD', KEYS[2], ARGV[1], tag)
redis.call('HSET', KEYS[3], tag,
  '[' .. raw .. ',' .. cjson.encode(info['exchange']) .. ',' .. cjson.encode(info['routing_key']) .. ']')
return {raw, redis.call('LLEN', KEYS[1])}
"""

#: Where a claimed message's ``delivery_info`` tells the queue's length after it was taken.
QUEUE_LENGTH = "queue_length"


class QoS(kombu_redis.QoS):
    def append(self, message: virtual.Message, delivery_tag: str) -> None:
        if self.channel.claims_unacked:
            # Already recorded in Redis by the claim script: only the in-memory bookkeeping is left.
            virtual.QoS.append(self, message, delivery_tag)
        else:
            super().append(message, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _shared_client: redis.Redis | None = None
    _claim_script: redis.commands.core.Script | None = None
    #: Whether the message being delivered was recorded as unacknowledged when it was taken.
    claims_unacked = False
    _waiting_on: str | None = None

    def _create_client(self, asynchronous: bool = False) -> redis.Redis:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        if self._shared_client is None or self._shared_client.connection_pool is not self.pool:
            self._shared_client = super()._create_client()
            self._claim_script = self._shared_client.register_script(_CLAIM)
        return self._shared_client

    def _claim(self) -> redis.commands.core.Script:
        self._create_client()
        assert self._claim_script is not None
        return self._claim_script

    def _claim_keys(self, queue: str) -> list[str]:
        return [queue, self.unacked_index_key, self.unacked_key]

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        if len(keys) != 1 or self.global_keyprefix:
            self._waiting_on = None
            return super()._brpop_start(timeout)
        queue = self._waiting_on = keys[0]
        connection = self._in_poll = self.client.connection
        # The claim is scored with the time it was sent, at most the BLMOVE timeout before the
        # message came: it is restored that much sooner than the visibility timeout says.
        connection.send_packed_command(connection.pack_commands([
            ("BLMOVE", queue, queue, "RIGHT", "RIGHT", self.brpop_timeout if timeout is None else timeout),
            ("EVALSHA", self._claim().sha, 3, *self._claim_keys(queue), time.time()),
        ]))

    def _brpop_read(self, **options: object) -> bool:
        queue = self._waiting_on
        if queue is None:
            return super()._brpop_read(**options)
        connection = self.client.connection
        try:
            try:
                seen = self.client.parse_response(connection, "BLMOVE", **options)
                try:
                    claimed = self.client.parse_response(connection, "EVALSHA")
                except redis.exceptions.NoScriptError:  # Redis restarted and forgot it: load it, claim
                    claimed = self._claim()(keys=self._claim_keys(queue), args=[time.time()]) if seen else None
            except self.connection_errors:
                connection.disconnect()
                raise
        finally:
            self._in_poll = None
            self._waiting_on = None
            self._flush_brpop_reauth()
        if claimed is None:
            raise Empty()  # nothing came, or a worker beside us took it first
        raw, queue_length = claimed
        payload = loads(raw)
        payload["properties"]["delivery_info"][QUEUE_LENGTH] = queue_length
        self._queue_cycle.rotate(queue)
        self.claims_unacked = True
        try:
            self.connection._deliver(payload, queue)
        finally:
            self.claims_unacked = False
        return True


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
