"""The job store: each job's status and outcome in Redis, written by the API and the workers.

A job is one request's images, of one priority (``inferq.priorities``). The API admits jobs
(``queued``; each refused that would take its priority's queue past its limit in images), a worker
marks them ``running`` when their batch starts and ``done``, ``failed`` or ``expired`` (its
deadline passed before its batch ran) when it ends, and the first outcome written is final: a
message delivered twice (its worker died before acknowledging it) cannot change an answer a
client may already have read. Every job expires RESULT_TTL after its last change. Outcomes of jobs an API process waits
for (``POST /recognize``) are also pushed to that process's reply list, one item per batch.

Each step is one Redis round trip for any number of jobs: the API admits a message's jobs and
pushes the message at once, a worker writes a batch's outcomes at once. The scripts touch several
keys, so the store needs one Redis, not a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator, Mapping, Sequence

import orjson
import redis

from inferq import keys
from inferq.broker import Envelope, bell
from inferq.priorities import INTERACTIVE, PRIORITIES
from inferq.replication import ReplicatedWrites

QUEUED, RUNNING, DONE, FAILED, EXPIRED = "queued", "running", "done", "failed", "expired"
#: The statuses a job ends in.
FINAL = (DONE, FAILED, EXPIRED)

# KEYS: the model's and priority's queued-images counter, one key per job, one inputs hash per
# job, then the queue to push a message onto and its bell (or neither). ARGV: max depth, ttl, now,
# priority, job count, model, then for each job its image count, filenames (JSON) and number of
# stored inputs followed by their names and bytes, then the message. Answers 1 or 0 per job and
# the depth after. The message is pushed only when every job was admitted, and after their records
# and inputs are written, so a worker never sees a job before them; a job refused stores nothing.
_ADMIT = """
local depth = tonumber(redis.call('GET', KEYS[1]) or '0')
local max, ttl, now, priority, jobs = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local model = ARGV[6]
local admitted, added, all, a = {}, 0, true, 7
for j = 1, jobs do
  local key, n, filenames, stored = KEYS[1 + j], tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 2])
  if depth + added + n <= max then
    redis.call('HSET', key, 'status', 'queued', 'n', n, 'created_at', now, 'priority', priority,
               'model', model, 'filenames', filenames)
    redis.call('EXPIRE', key, ttl)
    if stored > 0 then
      local inputs = KEYS[1 + jobs + j]
      for i = 1, stored do
        redis.call('HSET', inputs, ARGV[a + 1 + 2 * i], ARGV[a + 2 + 2 * i])
      end
      redis.call('EXPIRE', inputs, ttl)
    end
    added = added + n
    admitted[j] = 1
  else
    admitted[j] = 0
    all = false
  end
  a = a + 3 + 2 * stored
end
if added > 0 then
  depth = redis.call('INCRBY', KEYS[1], added)
end
if all and #KEYS > 1 + 2 * jobs then
  redis.call('LPUSH', KEYS[2 + 2 * jobs], ARGV[a])
  redis.call('LPUSH', KEYS[3 + 2 * jobs], 1)
end
return {admitted, depth}
"""

_START = """
for i, job in ipairs(KEYS) do
  if redis.call('HGET', job, 'status') == 'queued' then
    redis.call('HSET', job, 'status', 'running', 'started_at', ARGV[1])
  end
end
"""

# KEYS: the queued-images counters the jobs count in (one a model and priority), one key per job,
# the reply lists named by the jobs, then the inputs hashes to delete. ARGV: ttl, now, counter
# count, job count, then per job: status, image count, outcome JSON, the position of its reply list
# among KEYS (0 when nobody waits), its id and the position of its counter; last, the number of
# inputs hashes. Every reply list gets one item: a JSON list of [job id, outcome] pairs. The inputs
# go after the outcomes: a batch delivered again once they are written finds its jobs finished and
# needs none; UNLINK frees their megabytes off Redis's main thread.
_FINISH = """
local ttl, now, counters, jobs = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local finished, replies = {}, {}
for j = 1, jobs do
  local key, a = KEYS[counters + j], 5 + (j - 1) * 6
  local status = redis.call('HGET', key, 'status')
  if status ~= 'done' and status ~= 'failed' and status ~= 'expired' then
    redis.call('HSET', key, 'status', ARGV[a], 'outcome', ARGV[a + 2], 'finished_at', now)
    redis.call('EXPIRE', key, ttl)
    local counter = tonumber(ARGV[a + 5])
    finished[counter] = (finished[counter] or 0) + tonumber(ARGV[a + 1])
    local reply = tonumber(ARGV[a + 3])
    if reply > 0 then
      local pair = '[' .. cjson.encode(ARGV[a + 4]) .. ',' .. ARGV[a + 2] .. ']'
      replies[reply] = (replies[reply] and replies[reply] .. ',' or '') .. pair
    end
  end
end
for reply, items in pairs(replies) do
  redis.call('RPUSH', KEYS[reply], '[' .. items .. ']')
  redis.call('EXPIRE', KEYS[reply], ttl)
end
for counter, images in pairs(finished) do
  -- Never below zero: jobs admitted under another counter (before an upgrade) must not leave
  -- headroom that was never taken.
  if redis.call('DECRBY', KEYS[counter], images) < 0 then
    redis.call('SET', KEYS[counter], 0)
  end
end
for i = #KEYS - tonumber(ARGV[#ARGV]) + 1, #KEYS do
  redis.call('UNLINK', KEYS[i])
end
"""


class QueueFull(Exception):
    def __init__(self, priority: str, depth: int, model: str | None = None) -> None:
        super().__init__(f"{depth} {priority} items are queued" + (f" for model {model!r}" if model else ""))
        self.priority = priority
        self.depth = depth
        self.model = model


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a job ended: the model's answer for its items, or one error for all of them.

    An answer is ``{"model_version": n, "outputs": {name: values}}``, each output's values one per
    item (a worker writes NumPy arrays, read back as lists).
    """

    status: str
    answer: dict | None = None
    error: str | None = None

    @classmethod
    def done(cls, answer: dict) -> Outcome:
        return cls(DONE, answer=answer)

    @classmethod
    def failed(cls, error: str) -> Outcome:
        return cls(FAILED, error=error)

    @classmethod
    def expired(cls, error: str) -> Outcome:
        return cls(EXPIRED, error=error)

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY).decode()

    def to_dict(self) -> dict:
        if self.status == DONE:
            return {"answer": self.answer}
        return {"error": self.error, "expired": True} if self.status == EXPIRED else {"error": self.error}

    @classmethod
    def from_dict(cls, data: dict) -> Outcome:
        if "answer" in data:
            return cls.done(data["answer"])
        return cls.expired(data["error"]) if data.get("expired") else cls.failed(data["error"])


@dataclasses.dataclass(frozen=True)
class JobRecord:
    job_id: str
    status: str
    priority: str
    #: The model the job is for (jobs admitted before models had names: None).
    model: str | None
    filenames: list[str]
    created_at: float | None
    started_at: float | None
    finished_at: float | None
    outcome: Outcome | None


@dataclasses.dataclass(frozen=True)
class Finished:
    """A job's outcome as a worker hands it to :meth:`JobStore.finish`."""

    job_id: str
    count: int
    model: str
    priority: str
    #: The API process waiting for it, if one is.
    reply_to: str | None
    outcome: Outcome


class JobStore:
    def __init__(self, client: redis.Redis, *, result_ttl_s: int, depth_limits: Mapping[str, int],
                 replicas: int = 0, replica_timeout_ms: int = 500) -> None:
        """``depth_limits``: for each priority, the queued images past which its new work is refused.
        ``replicas``: how many replicas must hold a job's admission and message before ``admit`` and
        ``enqueue`` return, waiting up to ``replica_timeout_ms`` for them (``inferq.replication``)."""
        self._redis = client
        self._writes = ReplicatedWrites(client, replicas=replicas, timeout_ms=replica_timeout_ms)
        self._ttl = result_ttl_s
        self._depth_limits = dict(depth_limits)
        self._admit = client.register_script(_ADMIT)
        self._start = client.register_script(_START)
        self._finish = client.register_script(_FINISH)

    def admit(self, jobs: Sequence[tuple[str, Sequence[str]]], *, model: str, priority: str,
              enqueue: Envelope | None = None,
              stored_inputs: Mapping[str, Mapping[str, bytes]] | None = None) -> list[int | None]:
        """Record new queued jobs (id, filenames) of ``model`` and ``priority`` that fit in its queue, in order.

        For each job: None if admitted, else the queue's depth in images once the others were.
        ``stored_inputs`` (job id -> input name -> bytes) are the inputs that travel beside the
        jobs' message (``inferq.messages``), stored with each job admitted. ``enqueue`` is the
        message carrying these jobs, pushed onto its queue (with its bell) in the same round trip
        if every job was admitted, and not at all otherwise. Raises
        :class:`~inferq.replication.NotReplicated` if the replicas asked for did not acknowledge it:
        the jobs may still run, but a failover could lose them.
        """
        stored_inputs = stored_inputs or {}
        script_keys = [keys.queued_images(model, priority), *(keys.job(job_id) for job_id, _ in jobs),
                       *(keys.job_inputs(job_id) for job_id, _ in jobs)]
        args: list[object] = [self._depth_limits[priority], self._ttl, time.time(), priority, len(jobs), model]
        for job_id, filenames in jobs:
            stored = stored_inputs.get(job_id, {})
            args += [len(filenames), json.dumps(list(filenames)), len(stored)]
            for name, data in stored.items():
                args += [name, data]
        if enqueue is not None:
            script_keys += [enqueue.queue_key, bell(enqueue.queue_key)]
            args.append(enqueue.raw)

        def run_script(pipe: redis.client.Pipeline) -> None:
            pipe.evalsha(self._admit.sha, len(script_keys), *script_keys, *args)

        try:
            [(admitted, depth)] = self._writes.execute(run_script)
        except redis.exceptions.NoScriptError:  # Redis restarted (or failed over) and forgot it: load it, admit
            self._redis.script_load(_ADMIT)
            [(admitted, depth)] = self._writes.execute(run_script)
        return [None if ok else int(depth) for ok in admitted]

    def enqueue(self, message: Envelope) -> None:
        """Push a message of jobs admitted before, with its bell."""
        def push(pipe: redis.client.Pipeline) -> None:
            # Not a transaction: the message goes first, and one left without its bell is still
            # found, at a worker's next wait timeout.
            pipe.lpush(message.queue_key, message.raw)
            pipe.lpush(bell(message.queue_key), 1)

        self._writes.execute(push)

    def withdraw(self, jobs: dict[str, int], *, model: str, priority: str) -> None:
        """Forget admitted jobs (id -> image count) that could not be sent to the workers."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*(keys.job(job_id) for job_id in jobs), *(keys.job_inputs(job_id) for job_id in jobs))
            pipe.decrby(keys.queued_images(model, priority), sum(jobs.values()))
            pipe.execute()

    @contextlib.contextmanager
    def running(self, job_ids: Sequence[str]) -> Iterator[None]:
        """Mark the jobs running while the block runs.

        The write is sent on entering and its reply read on leaving, so its round trip overlaps
        the block's work (the model call) instead of coming before it. Redis errors propagate.
        """
        job_keys = [keys.job(job_id) for job_id in job_ids]
        now = time.time()
        pool = self._redis.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_command("EVALSHA", self._start.sha, len(job_keys), *job_keys, now)
            yield
            try:
                connection.read_response()
            except redis.exceptions.NoScriptError:  # Redis restarted and forgot it: load it, run it
                self._start(keys=job_keys, args=[now])
        except BaseException:
            # A reply may still be on its way: never give the connection back with it unread.
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def stored_inputs(self, job_ids: Sequence[str]) -> list[dict[str, bytes]]:
        """Each job's stored inputs (input name -> bytes), in one round trip; empty where none are."""
        with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(keys.job_inputs(job_id))
            return [{name.decode(): data for name, data in inputs.items()} for inputs in pipe.execute()]

    def finish(self, finished: Sequence[Finished], *, stored: Sequence[str] = ()) -> None:
        """Record the jobs' outcomes, answer whoever waits for them, and delete the stored inputs
        of the jobs ``stored`` names, all in one round trip."""
        # Lua indexes KEYS from 1: the counters, the jobs, then each reply list once.
        counters = {counter: position + 1 for position, counter in
                    enumerate(dict.fromkeys((job.model, job.priority) for job in finished))}
        reply_positions: dict[str, int] = {}
        for job in finished:
            if job.reply_to and job.reply_to not in reply_positions:
                reply_positions[job.reply_to] = len(counters) + 1 + len(finished) + len(reply_positions)
        script_keys = [*(keys.queued_images(*counter) for counter in counters),
                       *(keys.job(job.job_id) for job in finished),
                       *(keys.replies(listener) for listener in reply_positions),
                       *(keys.job_inputs(job_id) for job_id in stored)]
        args: list[object] = [self._ttl, time.time(), len(counters), len(finished)]
        for job in finished:
            reply = reply_positions[job.reply_to] if job.reply_to else 0
            args += [job.outcome.status, job.count, job.outcome.to_json(), reply, job.job_id,
                     counters[job.model, job.priority]]
        self._finish(keys=script_keys, args=[*args, len(stored)])

    def get(self, job_id: str) -> JobRecord | None:
        fields = {k.decode(): v for k, v in self._redis.hgetall(keys.job(job_id)).items()}
        if not fields:
            return None
        return JobRecord(
            job_id=job_id,
            status=fields["status"].decode(),
            priority=fields.get("priority", INTERACTIVE.encode()).decode(),
            model=fields["model"].decode() if "model" in fields else None,
            filenames=json.loads(fields.get("filenames", b"[]")),
            created_at=_float(fields.get("created_at")),
            started_at=_float(fields.get("started_at")),
            finished_at=_float(fields.get("finished_at")),
            outcome=Outcome.from_dict(orjson.loads(fields["outcome"])) if "outcome" in fields else None,
        )

    def replies(self, listener: str, timeout_s: float) -> list[tuple[str, Outcome]]:
        """Outcomes pushed for ``listener``: the first batch's, waiting up to ``timeout_s`` for one."""
        popped = self._redis.blpop([keys.replies(listener)], timeout=timeout_s)
        if popped is None:
            return []
        return [(job_id, Outcome.from_dict(outcome)) for job_id, outcome in orjson.loads(popped[1])]

    def queued_images(self, models: Sequence[str]) -> dict[str, dict[str, int]]:
        """Images admitted and not yet answered, by model and priority."""
        if not models:
            return {}
        counters = [(model, priority) for model in models for priority in PRIORITIES]
        counts = self._redis.mget([keys.queued_images(*counter) for counter in counters])
        queued: dict[str, dict[str, int]] = {model: {} for model in models}
        for (model, priority), count in zip(counters, counts, strict=True):
            queued[model][priority] = int(count or 0)
        return queued

    @property
    def depth_limits(self) -> dict[str, int]:
        return dict(self._depth_limits)

    def dead_letters(self) -> int:
        """Messages the workers' claim set aside, unreadable (``inferq.keys.DEAD_LETTERS``)."""
        return self._redis.llen(keys.DEAD_LETTERS)


def _float(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)
