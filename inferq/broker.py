"""kombu's Redis transport, made to lose no message when a worker dies: the one place inferq
depends on kombu's internals.

Written for the kombu versions in :data:`TESTED_KOMBU`; :func:`check_kombu` refuses any other at
start-up, and ``tests/contracts/test_kombu.py`` fails, naming what to re-check, when kombu moves.
The internals used are listed in :data:`KOMBU_INTERNALS`.

- **Taking a message.** kombu takes a message with BRPOP, which removes it from the queue, and
  only then records it as unacknowledged (the ``unacked`` hash, from which messages of dead workers
  are restored after the visibility timeout). A worker killed between the two loses the message.
  This channel takes the message and records it in one Lua script, so a message is always in a
  queue or in the unacked hash, from any number of queues, interactive ones first
  (``inferq.priorities``). An idle worker waits on the queues' bells (a list beside each queue,
  one item a message) with BLPOP, which takes no message; the claim goes to Redis in the same
  write and runs the moment BLPOP returns: one round trip a message, as with BRPOP. Only Redis
  2.0's commands are used. The script also tells how many messages are left behind this one
  (``delivery_info["queue_length"]``), which the batcher uses to decide whether to wait for more.
  kombu's synchronous get (``Queue.get``, :meth:`Channel.basic_get`) takes by the same script:
  a worker takes interactive work that way between a long batch's model calls.
  Bulk work is aged: once the oldest bulk message has waited longer than ``bulk_max_wait_s``, it
  is taken before interactive work, one claim in two at most (``docs/design.md``). A message whose
  properties cannot be read is set aside in ``inferq.keys.DEAD_LETTERS`` instead of being lost.
- **Fair share among tenants.** Within a queue, the API pushes each tenant's messages onto a list
  of the tenant's own (:func:`tenant_queue`, with the queue's bell), and puts the tenant on the
  queue's ring (:func:`tenant_ring`). The claim takes the queue's own list first (where kombu
  restores messages, and where producers that know no tenants push), then the tenants' lists by
  deficit round robin, each tenant's quantum its weight (``inferq.keys.TENANT_WEIGHTS``) times
  the transport option ``FAIR_SHARE_QUANTUM_OPTION`` in items, a message costing its items
  (:data:`ITEMS_HEADER`). The message's routing key stays the queue, so that its unacknowledged
  entry, in-flight list and restore are what they were (``docs/design.md``, "Tenants").
- **Work in flight.** Each queue has an in-flight list (:func:`inflight`) of the delivery tags
  workers hold unacknowledged, the claim adding to it and every removal from kombu's unacked hash
  (ack, reject, restore) taking from it: the demand a dead worker's messages make, for an
  autoscaler that reads list lengths.
- **Acks.** kombu sends each ack to Redis on its own; :meth:`QoS.acks_together` sends the acks
  of a batch's messages in one round trip, and :func:`acking` makes a script of the worker's (the
  one that writes a batch's outcomes) acknowledge them itself, so that outcomes and acks are one
  step: :func:`held_messages` names what the script removes, :func:`acked_already` keeps kombu's
  ack from removing it again.
- **Clients.** kombu builds a new ``redis.Redis`` for every ack and bookkeeping call, and redis-py
  fills its response-callback table in each client's constructor. The clients share one
  connection pool, so one client serves every call; it is rebuilt when kombu replaces the pool
  (after a fork).
- **Sentinel.** :class:`SentinelTransport` is the same channel over kombu's Sentinel channel: its
  connections go to the master the Sentinels name (transport option ``master_name``), asked
  anew for each connection, so a worker reconnecting after a failover finds the new master.
- **Messages the API pushes itself.** :func:`envelope` lays out a task message as this transport
  keeps it in Redis, so that the API can push it, with its bell, in the same Lua script that
  admits its jobs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from queue import Empty

import kombu
import orjson
import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import loads

from inferq import keys as keys_
from inferq import priorities
from inferq.lua import Layout
from inferq.redis_connection import names_sentinels

log = logging.getLogger(__name__)

#: The transport option that sets :attr:`Channel.bulk_max_wait_s` (BULK_MAX_WAIT_S).
BULK_MAX_WAIT_OPTION = "bulk_max_wait_s"
#: The transport option that sets a weight-1 tenant's quantum, in items (MAX_BATCH_SIZE): one
#: message of a model's full batch, so that a tenant's turn takes at least one message.
FAIR_SHARE_QUANTUM_OPTION = "fair_share_quantum"

#: The kombu versions this module was written and tested for.
TESTED_KOMBU = ("5.7.0",)

#: What of kombu's this module relies on beyond its public API, for the contract test.
KOMBU_INTERNALS = (
    "Channel._create_client", "Channel._brpop_start", "Channel._brpop_read", "Channel._queue_cycle",
    "Channel._in_poll", "Channel._flush_brpop_reauth", "Channel._q_for_pri", "Channel.unacked_key",
    "Channel.unacked_index_key", "Channel.priority_steps", "Channel.global_keyprefix",
    "Connection._deliver", "QoS.append", "QoS._remove_from_indices (every ack, reject and restore)",
    "QoS._delivered (this channel's messages by tag, still there while they are removed)",
    "QoS.pipe_or_acquire", "QoS.ack (kombu's: the unacked entry's removal, then virtual.QoS.ack's bookkeeping)",
    "QoS.restore_by_tag", "QoS.restore_visible (the periodic sweep)", "Channel._restore",
    "an ack's removal from Redis: the unacked hash's entry and its index's (QoS._remove_from_indices), "
    "re-made by the scripts acking wraps",
    "the unacked hash's [message, exchange, routing key] layout",
    "the message layout in the queue (envelope)",
    "SentinelChannel._get_pool and ._sentinel_managed_pool (its connections to the Sentinels' master), "
    "combined with Channel's claim by inheritance",
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
            "install a tested version (pip install -e '.[server]') or re-check them and extend TESTED_KOMBU")


#: The header the API stamps each message with: when it was queued (unix seconds), read by the
#: claim for aging without decoding the message. It is the first key of the envelope's first key,
#: so that the claim finds it with an anchored match, whatever the message's size.
QUEUED_AT_HEADER = "inferq_queued_at"
#: The header of a message's items (``inferq.messages.IMAGES_HEADER``), put second, so that the
#: claim reads a message's cost to its tenant near its start.
ITEMS_HEADER = "inferq_images"
#: Characters of a message's start in which the claim looks for :data:`ITEMS_HEADER`.
_HEAD_CHARS = 512


def tenant_queue(queue: str, tenant: str) -> str:
    """The list of ``tenant``'s messages of ``queue``, taken in its share of the queue."""
    return f"{queue}@{tenant}"


def tenant_ring(queue: str) -> str:
    """The list of tenants with messages in ``queue``'s tenant lists, the next to take at the right."""
    return f"{queue}:tenants"


def tenant_members(queue: str) -> str:
    """The set of the names on :func:`tenant_ring`, so that a tenant is put on it once."""
    return f"{queue}:tenants:set"


def tenant_deficits(queue: str) -> str:
    """Hash of tenant -> its deficit (items it may take before its turn passes) in ``queue``."""
    return f"{queue}:tenant-deficit"


def backlog(queue: str) -> str:
    """A list of one item a message waiting in ``queue``, its own list's and its tenants' lists'
    together: what the autoscaler reads (KEDA's redis scaler reads one list's length, and a
    tenant's work is in lists of names it cannot know). The API pushes an item with each message
    it queues, and every claim sets the list to the count it makes of what is left, so that it
    follows whatever else moved messages (kombu's restore, a take-back) by the next claim."""
    return f"{queue}:backlog"


def inflight(queue: str) -> str:
    """The list of delivery tags of ``queue``'s messages that workers hold unacknowledged: what
    the autoscaler reads as the demand of work in flight (a dead worker's included)."""
    return f"{queue}:inflight"


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A message as kombu's Redis transport keeps it: the list it goes on and its JSON; for a
    tenant's message, the queue it is of (whose bell and ring it takes) and the tenant."""

    queue_key: str
    raw: str
    #: The queue (routing key) whose list or tenant list ``queue_key`` is.
    queue: str | None = None
    tenant: str | None = None

    @property
    def lane(self) -> str:
        """The queue whose bell rings for it."""
        return self.queue or self.queue_key


def envelope(queue: str, body: object, *, headers: dict, properties: dict,
             queued_at: float | None = None, tenant: str | None = None, items: int | None = None) -> Envelope:
    """The message kombu's Producer would push onto ``queue`` for ``body`` (JSON-serialized), as
    the default exchange routes it, with priority 0 and no second encoding of the body;
    ``queued_at`` (unix seconds), the header the claim ages bulk work by; ``tenant``: pushed onto
    that tenant's list of the queue instead, costing it ``items`` (the header the claim reads)."""
    if items is not None:
        headers = {ITEMS_HEADER: items, **headers}
    if queued_at is not None:
        headers = {QUEUED_AT_HEADER: queued_at, **headers}
    message = {
        # First, so that the claim reads QUEUED_AT_HEADER at the envelope's start (_CLAIM).
        "headers": headers,
        # What kombu's "json" serializer writes, by orjson: kombu's encoder (the standard library's)
        # takes several times longer over a bulk message's megabyte of tensors.
        "body": orjson.dumps(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "properties": {
            **properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": None,
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    raw = orjson.dumps(message).decode()
    if tenant is None:
        return Envelope(queue, raw)
    return Envelope(tenant_queue(queue, tenant), raw, queue, tenant)


# Takes the oldest message of the first queue that has one (KEYS[1..n], in the order to take
# them) and records it as unacknowledged exactly as kombu's QoS.append does: index scored by time,
# hash of [message, exchange, routing key] by delivery tag; and its tag in its queue's in-flight
# list (KEYS[2n+1..3n]). A queue's own list comes first; then its tenants' lists, by deficit round
# robin (below), the tenants' weights in KEYS[3n+4], a weight-1 tenant's quantum ``quantum`` items.
# Aging: when an interactive queue (the first ``first``) has work and the oldest message of a bulk
# queue has waited longer than ``max_wait`` seconds (negative: no aging this time), that queue is taken
# first. A message whose properties cannot be read goes to the dead-letter list (KEYS[3n+3]) as it
# was, and the claim goes on with the next. Then leaves each queue with one bell per message, its
# tenants' included (KEYS[n+1..2n]), up to MAX_BELLS: bells are what idle workers wait on; and its
# backlog list (KEYS[3n+5..4n+4]) with one item per message, however many: what autoscalers read. Answers
# the message, its queue, how many messages are left in all of them, how many in the interactive
# ones, how many were dead-lettered, and the message's delivery tag; or nil when nothing was there.
# ``n`` is the number of queues. In the layout, KEYS is one list (``per_queue``): its groups depend on
# ``n``, so the script counts them from the list's start.
_CLAIM_LAYOUT = Layout("claim", key_list="per_queue",
                       args=("now", "n", "max_bells", "first", "max_wait", "quantum"),
                       numbers={"now", "n", "max_bells", "first", "max_wait", "quantum"})
_CLAIM = _CLAIM_LAYOUT.script(r"""
quantum = quantum or 64
-- The n queues, their bells, their in-flight lists, four keys of all of them, then their backlogs.
local queues, bells, inflights = per_queue_offset, per_queue_offset + n, per_queue_offset + 2 * n
local index, unacked, dead_letters, weights = KEYS[inflights + n + 1], KEYS[inflights + n + 2],
  KEYS[inflights + n + 3], KEYS[inflights + n + 4]
local backlogs = inflights + n + 4

-- A list holding ``want`` items, by the fewest commands: trimmed from its old end, or pushed to in
-- chunks (Lua's unpack takes a few thousand values at most).
local function fill(list, have, want)
  if want == 0 and have > 0 then
    redis.call('DEL', list)
  elseif have > want then
    redis.call('LTRIM', list, 0, want - 1)
  end
  local ones = {}
  while have < want do
    local step = math.min(want - have, 1000)
    for j = #ones + 1, step do
      ones[j] = 1
    end
    redis.call('LPUSH', list, unpack(ones, 1, step))
    have = have + step
  end
end

-- Only the properties are needed, and decoding a bulk message whole would hold Redis up for
-- milliseconds: they are the last key of every envelope (ours and kombu's), so the tail from the
-- last '"properties":' is decoded alone. The body is a JSON string, inside which every quote is
-- escaped, so the pattern cannot occur in it. Any other layout is decoded whole. Nil when they
-- cannot be read (not JSON, no delivery tag or routing): such a message can be neither recorded
-- nor delivered.
local function properties_of(raw)
  local properties
  local at, search = nil, 1
  while true do
    local found = string.find(raw, '"properties":', search, true)
    if not found then
      break
    end
    at, search = found, found + 1
  end
  if at then
    local ok, tail = pcall(cjson.decode, '{' .. string.sub(raw, at))
    if ok and type(tail) == 'table' and type(tail['properties']) == 'table' then
      properties = tail['properties']
    end
  end
  if not properties then
    local ok, whole = pcall(cjson.decode, raw)
    if ok and type(whole) == 'table' and type(whole['properties']) == 'table' then
      properties = whole['properties']
    end
  end
  if not properties or type(properties['delivery_tag']) ~= 'string'
      or type(properties['delivery_info']) ~= 'table' then
    return nil
  end
  return properties
end

-- When a message was queued, from the header the API puts first; 0 (long ago) for a message
-- that has none, which no producer of ours sends.
local function queued_at(raw)
  return tonumber(string.match(raw,
    '^{%s*"headers"%s*:%s*{%s*"QUEUED_AT_HEADER"%s*:%s*([%d%.eE%+%-]+)')) or 0
end

-- What a message costs its tenant: its items, from the header the API puts second; 1 without it.
local function items_of(raw)
  return tonumber(string.match(string.sub(raw, 1, HEAD_CHARS), '"ITEMS_HEADER"%s*:%s*(%d+)')) or 1
end

-- A queue's tenants with work: the ring (the next at the right), the set of its names, their deficits.
local function ring_of(queue)
  return queue .. 'TENANT_RING_SUFFIX', queue .. 'TENANT_MEMBERS_SUFFIX', queue .. 'TENANT_DEFICITS_SUFFIX'
end

local function drop_tenant(queue, tenant)
  local ring, members, deficits = ring_of(queue)
  redis.call('RPOP', ring)
  redis.call('SREM', members, tenant)
  redis.call('HDEL', deficits, tenant)
end

-- Deficit round robin over a queue's tenants: the ring's next tenant takes its oldest message if
-- its deficit covers the message's items; else its deficit grows by its quantum and it goes to the
-- back of the ring. A tenant whose list is empty leaves the ring, its deficit forgotten. Bounded:
-- a turn adds at least a quantum, and past the bound the next tenant takes its message anyway.
local function take_fair(queue)
  local ring, members, deficits = ring_of(queue)
  local turns = 4 * redis.call('LLEN', ring) + 64
  for turn = 1, turns do
    local tenant = redis.call('LINDEX', ring, -1)
    if not tenant then
      return false
    end
    local list = queue .. 'TENANT_QUEUE_SEPARATOR' .. tenant
    local oldest = redis.call('LINDEX', list, -1)
    if not oldest then
      drop_tenant(queue, tenant)
    else
      local cost = items_of(oldest)
      local deficit = tonumber(redis.call('HGET', deficits, tenant) or '0')
      if deficit >= cost or turn == turns then
        redis.call('RPOP', list)
        if redis.call('LLEN', list) == 0 then
          drop_tenant(queue, tenant)
        else
          redis.call('HSET', deficits, tenant, math.max(0, deficit - cost))
        end
        return oldest
      end
      local weight = tonumber(redis.call('HGET', weights, tenant) or '1') or 1
      redis.call('HSET', deficits, tenant, deficit + math.max(1, weight * quantum))
      redis.call('RPOPLPUSH', ring, ring)
    end
  end
  return false
end

-- Messages waiting in a queue: its own list and its tenants'.
local function waiting_in(queue)
  local count = redis.call('LLEN', queue)
  for _, tenant in ipairs(redis.call('LRANGE', queue .. 'TENANT_RING_SUFFIX', 0, -1)) do
    count = count + redis.call('LLEN', queue .. 'TENANT_QUEUE_SEPARATOR' .. tenant)
  end
  return count
end

-- When the oldest message of a queue was queued, its tenants' included; nil for none.
local function oldest_in(queue)
  local oldest = redis.call('LINDEX', queue, -1)
  local at = oldest and queued_at(oldest) or nil
  for _, tenant in ipairs(redis.call('LRANGE', queue .. 'TENANT_RING_SUFFIX', 0, -1)) do
    local head = redis.call('LINDEX', queue .. 'TENANT_QUEUE_SEPARATOR' .. tenant, -1)
    if head and (at == nil or queued_at(head) < at) then
      at = queued_at(head)
    end
  end
  return at
end

local order = {}
if max_wait >= 0 and first < n then
  local waiting = false
  for i = 1, first do
    if waiting_in(KEYS[queues + i]) > 0 then
      waiting = true
      break
    end
  end
  for i = first + 1, waiting and n or 0 do
    local at = oldest_in(KEYS[queues + i])
    if at and now - at > max_wait then
      order[1] = i
      break
    end
  end
end
for i = 1, n do
  order[#order + 1] = i
end

local raw, from, properties, dead = false, 0, nil, 0
for _, i in ipairs(order) do
  while true do
    -- The queue's own list first: what kombu restored (its tenant's oldest) and what producers
    -- that know no tenants pushed.
    raw = redis.call('RPOP', KEYS[queues + i]) or take_fair(KEYS[queues + i])
    if not raw then
      break
    end
    properties = properties_of(raw)
    if properties then
      from = i
      break
    end
    redis.call('LPUSH', dead_letters, raw)
    dead = dead + 1
  end
  if from > 0 then
    break
  end
end

local left, left_first = 0, 0
for i = 1, n do
  local queued = waiting_in(KEYS[queues + i])
  left = left + queued
  if i <= first then
    left_first = left_first + queued
  end
  fill(KEYS[bells + i], redis.call('LLEN', KEYS[bells + i]), math.min(queued, max_bells))
  if KEYS[backlogs + i] then
    fill(KEYS[backlogs + i], redis.call('LLEN', KEYS[backlogs + i]), queued)
  end
end
if from == 0 then
  if dead == 0 then
    return false
  end
  return {false, false, left, left_first, dead, false}
end
local tag = properties['delivery_tag']
local info = properties['delivery_info']
redis.call('ZADD', index, now, tag)
redis.call('HSET', unacked, tag,
  '[' .. raw .. ',' .. cjson.encode(info['exchange']) .. ',' .. cjson.encode(info['routing_key']) .. ']')
redis.call('LPUSH', KEYS[inflights + from], tag)
return {raw, KEYS[queues + from], left, left_first, dead, tag}
""".replace("QUEUED_AT_HEADER", QUEUED_AT_HEADER).replace("ITEMS_HEADER", ITEMS_HEADER).replace(
    "HEAD_CHARS", str(_HEAD_CHARS)).replace("TENANT_RING_SUFFIX", tenant_ring("")).replace(
    "TENANT_MEMBERS_SUFFIX", tenant_members("")).replace("TENANT_DEFICITS_SUFFIX", tenant_deficits("")).replace(
    "TENANT_QUEUE_SEPARATOR", tenant_queue("", "")))

# Removes a message (its delivery tag) from the unacknowledged hash and index, as kombu's
# QoS does on an ack, a reject or a restore, and its tag from its queue's in-flight list. The
# queue is the routing key, the last item of the hash's [message, exchange, routing key]: read
# from the entry's tail, so that the message is not decoded.
_RELEASE_LAYOUT = Layout("release", keys=("unacked", "index"), args=("tag",))
_RELEASE = _RELEASE_LAYOUT.script(r"""
local entry = redis.call('HGET', unacked, tag)
if entry then
  local queue = string.match(string.sub(entry, -512), '"([^"]*)"%s*%]%s*$')
  if queue then
    redis.call('LREM', queue .. 'INFLIGHT_SUFFIX', -1, tag)
  end
end
redis.call('ZREM', index, tag)
return redis.call('HDEL', unacked, tag)
""".replace("INFLIGHT_SUFFIX", inflight("")))


@dataclasses.dataclass(frozen=True)
class HeldMessages:
    """Messages a worker holds unacknowledged, as a script acknowledges them (:func:`acking`): kombu's
    unacked hash and its index, and each message's delivery tag with its queue's in-flight list."""

    unacked_key: str
    unacked_index_key: str
    tags: tuple[str, ...]
    inflight_keys: tuple[str, ...]

    @property
    def keys(self) -> list[str]:
        """What goes after the wrapped script's own KEYS."""
        return [self.unacked_key, self.unacked_index_key, *self.inflight_keys]

    @property
    def args(self) -> list[object]:
        """What goes after the wrapped script's own ARGV."""
        return [*self.tags, len(self.tags)]


# What acking() puts around a script. Before it: the acks' keys and arguments are taken off the
# ends of KEYS and ARGV, so that the script reads its own layout as it always does. After it, once
# the script has written everything (an error before leaves the messages unacknowledged, to be
# delivered again): each message removed as _remove_from_indices removes it on kombu's ack. No
# command here grows memory: the script runs at maxmemory as before.
_ACKING_BEFORE = r"""
local ack_count = tonumber(table.remove(ARGV))
local ack_tags, ack_inflight = {}, {}
for i = ack_count, 1, -1 do
  ack_tags[i] = table.remove(ARGV)
  ack_inflight[i] = table.remove(KEYS)
end
local ack_index = table.remove(KEYS)
local ack_unacked = table.remove(KEYS)
"""
_ACKING_AFTER = r"""
for i = 1, ack_count do
  redis.call('LREM', ack_inflight[i], -1, ack_tags[i])
  redis.call('ZREM', ack_index, ack_tags[i])
  redis.call('HDEL', ack_unacked, ack_tags[i])
end
"""


def acking(script: str) -> str:
    """``script`` that also acknowledges the messages of a :class:`HeldMessages` passed after its keys
    and arguments, in the same step, once it has run to its end (one that returns early, or fails,
    leaves them unacknowledged: delivered again, not lost)."""
    return _ACKING_BEFORE + script + _ACKING_AFTER


# Takes out of the in-flight lists (``inflights``) the tags the unacknowledged hash (``unacked``) no
# longer holds: left by whatever removed them without _RELEASE (a worker of an older release
# during an upgrade, a hand on Redis), they would hold workers up for ever. The claim and
# _RELEASE keep both in one step each, so this never removes a tag a worker holds.
_RECONCILE_LAYOUT = Layout("reconcile", key_list="inflights", last_keys=("unacked",))
_RECONCILE = _RECONCILE_LAYOUT.script(r"""
local removed = 0
for i = inflights_offset + 1, inflights_offset + inflights_count do
  for _, tag in ipairs(redis.call('LRANGE', KEYS[i], 0, -1)) do
    if redis.call('HEXISTS', unacked, tag) == 0 then
      removed = removed + redis.call('LREM', KEYS[i], 0, tag)
    end
  end
end
return removed
""")

#: Bells a queue keeps at most: enough to wake every idle worker; a busy one claims without one.
MAX_BELLS = 256

#: Where a claimed message's ``delivery_info`` tells how many messages are left in the queues it
#: was claimed from, and how many of those are interactive.
QUEUE_LENGTH = "queue_length"
INTERACTIVE_LEFT = "interactive_left"


def bell(queue: str) -> str:
    """The list an idle worker waits on for ``queue``: one item a message pushed by inferq."""
    return f"{queue}:bell"


class QoS(kombu_redis.QoS):
    #: The pipeline acks go into while :meth:`acks_together` holds them; None: each ack is sent alone.
    _held_acks: redis.client.Pipeline | None = None
    #: Tags whose unacked entries a script has removed, not yet acked here (:meth:`acked_already`).
    _acked_already: set[str]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._acked_already = set()

    @contextlib.contextmanager
    def acks_together(self) -> Iterator[None]:
        """The acks made in the block sent to Redis in one round trip as it ends, where kombu sends
        one each: a batch's messages are acknowledged together. Each is off the in-memory books at
        once, as kombu's ack does it; its unacked entry is removed as the block ends, errors or not.
        One whose removal does not reach Redis is delivered again after the visibility timeout, as
        it would be after a failed ack of its own: its jobs' outcomes are written already and stand."""
        if self._held_acks is not None:  # nested: the outer block sends them
            yield
            return
        with self.pipe_or_acquire() as pipe:
            self._held_acks = pipe
            try:
                yield
            finally:
                self._held_acks = None
                if len(pipe):
                    pipe.execute()

    def acked_already(self, tags: Iterable[str]) -> None:
        """The unacked entries of ``tags`` were removed by a script (:func:`acking`): their acks,
        whenever they come (Celery's consumer makes them on its next loop, not at once), take them
        off the in-memory books only. A channel's marks go with it when it closes."""
        self._acked_already.update(tags)

    def ack(self, delivery_tag: str) -> None:
        if delivery_tag in self._acked_already:
            self._acked_already.discard(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)
            return
        if self._held_acks is None:
            super().ack(delivery_tag)
            return
        self._remove_from_indices(delivery_tag, self._held_acks)
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        self._acked_already.discard(delivery_tag)  # nothing of it is left in Redis to give back
        super().reject(delivery_tag, requeue)

    def append(self, message: virtual.Message, delivery_tag: str) -> None:
        if self.channel.claims_unacked:
            # Already recorded in Redis by the claim script: only the in-memory bookkeeping is left.
            virtual.QoS.append(self, message, delivery_tag)
        else:
            super().append(message, delivery_tag)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        super().restore_visible(start, num, interval)
        # The sweep's own schedule: this worker's queues' in-flight lists checked against the hash.
        queues = sorted(self.channel.active_queues)
        if queues:
            with self.channel.conn_or_acquire() as client:
                client.eval(_RECONCILE, *_RECONCILE_LAYOUT.command(inflights=[*map(inflight, queues)],
                                                                    unacked=self.unacked_key))

    def _remove_from_indices(self, delivery_tag: str,
                             pipe: redis.client.Pipeline | None = None) -> redis.client.Pipeline:
        # Every ack, reject and restore (ours and other workers' sweeps) comes through here: the
        # in-flight lists leave with the unacked entries, in the same pipeline or transaction.
        message = self._delivered.get(delivery_tag)
        with self.pipe_or_acquire(pipe) as pipe:
            if message is None:  # another worker's, in a sweep: its queue is read from its entry
                return pipe.eval(_RELEASE, *_RELEASE_LAYOUT.command(unacked=self.unacked_key,
                                                                    index=self.unacked_index_key, tag=delivery_tag))
            # Ours (acks, rejects, the give-back at shutdown): its queue is known, and native
            # commands cost Redis a tenth of the script.
            return (pipe.lrem(inflight(message.delivery_info["routing_key"]), -1, delivery_tag)
                    .zrem(self.unacked_index_key, delivery_tag).hdel(self.unacked_key, delivery_tag))


def acks_together(channel: object) -> contextlib.AbstractContextManager[None]:
    """:meth:`QoS.acks_together` of ``channel`` (a kombu message's), where it is one of this transport's;
    else nothing (each ack is sent alone, as its transport sends it)."""
    qos = getattr(channel, "qos", None)
    return qos.acks_together() if isinstance(qos, QoS) else contextlib.nullcontext()


def held_messages(channel: object, tags: Sequence[str]) -> HeldMessages | None:
    """The messages of ``tags`` that ``channel`` (a kombu message's) delivered, as a script acknowledges
    them (:func:`acking`); None where the channel is not one of this transport's or does not hold
    them all: they are then acknowledged as kombu does."""
    qos = getattr(channel, "qos", None)
    if not isinstance(qos, QoS) or not tags:
        return None
    delivered = [qos._delivered.get(tag) for tag in tags]
    if any(message is None for message in delivered):
        return None
    return HeldMessages(qos.unacked_key, qos.unacked_index_key, tuple(tags),
                        tuple(inflight(message.delivery_info["routing_key"]) for message in delivered))


def acked_already(channel: object, tags: Iterable[str]) -> None:
    """:meth:`QoS.acked_already` of ``channel``, where it is one of this transport's."""
    qos = getattr(channel, "qos", None)
    if isinstance(qos, QoS):
        qos.acked_already(tags)


class Channel(kombu_redis.Channel):
    """Takes messages with the claim script, from any number of queues, interactive ones first.

    Waiting: while the last claim left messages behind, the next claim is sent at once. Otherwise
    the channel blocks with BLPOP on the queues' bells, which the API pushes with each message,
    and sends the claim in the same write; Redis runs it the moment BLPOP returns, woken or timed
    out. A message pushed without a bell (kombu restoring one whose worker died, another
    producer) is claimed at the next timeout at the latest, and the claim gives it a bell.
    """

    QoS = QoS
    _shared_client: redis.Redis | None = None
    _claim_script: redis.commands.core.Script | None = None
    #: Whether the message being delivered was recorded as unacknowledged when it was taken.
    claims_unacked = False
    _claiming: list[str] | None = None
    _waited = False
    #: Messages left in the queues at the last claim.
    _left = 0
    #: Whether the last claim took aged bulk work before waiting interactive work: the next one
    #: does not, so that interactive work waits at most one bulk message a claim.
    _aged_last = False

    @functools.cached_property
    def bulk_max_wait_s(self) -> float | None:
        """Seconds past which the oldest bulk message is taken before interactive work (transport
        option ``BULK_MAX_WAIT_OPTION``); None: strictly interactive first."""
        value = self.connection.client.transport_options.get(BULK_MAX_WAIT_OPTION)
        return None if value is None else float(value)

    @functools.cached_property
    def fair_share_quantum(self) -> int:
        """A weight-1 tenant's quantum in items (transport option ``FAIR_SHARE_QUANTUM_OPTION``)."""
        return int(self.connection.client.transport_options.get(FAIR_SHARE_QUANTUM_OPTION) or 64)

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

    def _claim_call(self, queues: list[str]) -> tuple[list, list]:
        # The per-queue groups in the order the script counts them (_CLAIM).
        per_queue = [*queues, *map(bell, queues), *map(inflight, queues), self.unacked_index_key, self.unacked_key,
                     keys_.DEAD_LETTERS, keys_.TENANT_WEIGHTS, *map(backlog, queues)]
        interactive = sum(priorities.rank(queue) == 0 for queue in queues)
        max_wait = -1 if self.bulk_max_wait_s is None or self._aged_last else self.bulk_max_wait_s
        return _CLAIM_LAYOUT.build(per_queue=per_queue, now=time.time(), n=len(queues), max_bells=MAX_BELLS,
                                   first=interactive, max_wait=max_wait, quantum=self.fair_share_quantum)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: object) -> virtual.Message | None:
        """kombu's synchronous get (``kombu.Queue.get``), by the claim script, which kombu's would
        not use: one message of ``queue`` (its own list, then its tenants' in their shares) taken
        and recorded as unacknowledged in one step, so that a worker killed before it acknowledges
        the message loses nothing. Its ``delivery_info`` tells what is left, as a consumed
        message's does. None when the queue is empty."""
        keys, args = self._claim_call([queue])
        claimed = self._claim()(keys=keys, args=args)
        payload = self._payload(claimed) if claimed else None
        if payload is None:
            return None
        message = self.Message(payload, channel=self)
        if no_ack:
            with self.qos.pipe_or_acquire() as pipe:
                self.qos._remove_from_indices(message.delivery_tag, pipe).execute()
            return message
        self.claims_unacked = True
        try:
            self.qos.append(message, message.delivery_tag)
        finally:
            self.claims_unacked = False
        return message

    def _payload(self, claimed: list) -> dict | None:
        """A claim's message, its ``delivery_info`` telling what is left in its queue; None when
        the claim took nothing or took a message that is not JSON (set aside as a dead letter)."""
        raw, queue, left, interactive_left, dead, tag = claimed
        if dead:
            log.warning("set %d message(s) whose properties cannot be read aside in %s", dead, keys_.DEAD_LETTERS)
        if raw is None:
            return None
        try:
            payload = loads(raw)
            payload["properties"]["delivery_info"].update({QUEUE_LENGTH: left, INTERACTIVE_LEFT: interactive_left})
        except (ValueError, TypeError, KeyError, AttributeError):
            # Properties readable from the tail, but not a message as a whole.
            log.warning("set message %s from %s aside in %s: it is not JSON", _text(tag), _text(queue),
                        keys_.DEAD_LETTERS)
            self._set_aside(raw, _text(tag))
            return None
        return payload

    def _restore(self, message: virtual.Message, leftmost: bool = False) -> None:
        # kombu's would delete the unacked entry alone, leaving its index and in-flight entries.
        self.qos.restore_by_tag(message.delivery_tag, leftmost=leftmost)

    def _set_aside(self, raw: bytes, tag: str) -> None:
        """Move a claimed message that cannot be delivered from the unacknowledged set to the dead
        letters, where /status counts it: restored, it would fail every worker again."""
        with self.qos.pipe_or_acquire() as pipe:
            self.qos._remove_from_indices(tag, pipe).lpush(keys_.DEAD_LETTERS, raw).execute()

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self.global_keyprefix or list(self.priority_steps) != [0]:
            raise RuntimeError("inferq's broker takes messages from plain queues only: no global_keyprefix, "
                               "priority_steps [0]")
        # Interactive queues first; among equals, kombu's round robin.
        queues = sorted(self._queue_cycle.consume(len(self.active_queues)), key=priorities.rank)
        self._claiming = queues
        self._waited = self._left == 0
        connection = self._in_poll = self.client.connection
        keys, args = self._claim_call(queues)
        commands: list[tuple] = [("EVALSHA", self._claim().sha, len(keys), *keys, *args)]
        if self._waited:
            wait_s = self.brpop_timeout if timeout is None else timeout
            commands.insert(0, ("BLPOP", *map(bell, queues), wait_s))
        connection.send_packed_command(connection.pack_commands(commands))

    def _brpop_read(self, **options: object) -> bool:
        queues = self._claiming
        assert queues is not None, "a claim is read only after one was sent"
        connection = self.client.connection
        try:
            try:
                if self._waited:
                    self.client.parse_response(connection, "BLPOP", **options)
                try:
                    claimed = self.client.parse_response(connection, "EVALSHA")
                except redis.exceptions.NoScriptError:  # Redis restarted and forgot it: load it, claim
                    keys, args = self._claim_call(queues)
                    claimed = self._claim()(keys=keys, args=args)
            except self.connection_errors:
                connection.disconnect()
                raise
        finally:
            self._in_poll = None
            self._claiming = None
            self._flush_brpop_reauth()
        if claimed is None:
            self._left = 0
            raise Empty()  # nothing came, or a worker beside us took it first
        self._left = claimed[2]
        queue = _text(claimed[1])
        if claimed[0] is not None:  # a message was taken, to be delivered or set aside
            self._aged_last = priorities.rank(queue) > 0 and claimed[3] > 0
        payload = self._payload(claimed)
        if payload is None:
            raise Empty()
        self._queue_cycle.rotate(queue)
        self.claims_unacked = True
        try:
            self.connection._deliver(payload, queue)
        finally:
            self.claims_unacked = False
        return True


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """:class:`Channel`'s claim over kombu's Sentinel channel, which makes the connection pools."""


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


def transport(redis_url: str) -> str:
    """The transport for ``redis_url``: one Redis, or the master that Sentinels name."""
    return f"{__name__}:{'SentinelTransport' if names_sentinels(redis_url) else 'Transport'}"
