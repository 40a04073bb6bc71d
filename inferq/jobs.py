"""The job store: each job's status and outcome in Redis, written by the API and the workers.

A job is one request's images. The API admits it (``queued``; refused past MAX_QUEUE_DEPTH queued
images), a worker marks it ``running`` when its batch starts and ``done`` or ``failed`` when the
batch ends, and the first outcome written is final: a message delivered twice (its worker died
before acknowledging it) cannot change an answer a client may already have read. Every job expires
RESULT_TTL after its last change. The outcome of a job someone waits for (``POST /recognize``) is
also pushed to a reply list, so the waiting request gets it in one blocking pop.

Each step is one Redis round trip whatever the number of jobs, for the workers a batch at a time.
The scripts touch several keys, so the store needs one Redis, not a cluster.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence

import redis

from inferq import keys
from inferq.messages import ImageResult

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"

_ADMIT = """
local depth = tonumber(redis.call('GET', KEYS[2]) or '0')
local n = tonumber(ARGV[1])
if depth + n > tonumber(ARGV[2]) then
  return {0, depth}
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'n', ARGV[1], 'created_at', ARGV[4], 'filenames', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, redis.call('INCRBY', KEYS[2], n)}
"""

_START = """
for i, job in ipairs(KEYS) do
  if redis.call('HGET', job, 'status') == 'queued' then
    redis.call('HSET', job, 'status', 'running', 'started_at', ARGV[1])
  end
end
"""

# KEYS: the queued-images counter, then a job key and its reply key per job.
# ARGV: ttl, now, then status, image count, outcome JSON and reply flag per job.
_FINISH = """
local ttl, now = ARGV[1], ARGV[2]
local finished = 0
for i = 2, #KEYS, 2 do
  local a = 3 + (i - 2) * 2
  local status = redis.call('HGET', KEYS[i], 'status')
  if status ~= 'done' and status ~= 'failed' then
    redis.call('HSET', KEYS[i], 'status', ARGV[a], 'outcome', ARGV[a + 2], 'finished_at', now)
    redis.call('EXPIRE', KEYS[i], ttl)
    finished = finished + tonumber(ARGV[a + 1])
    if ARGV[a + 3] == '1' then
      redis.call('RPUSH', KEYS[i + 1], ARGV[a + 2])
      redis.call('EXPIRE', KEYS[i + 1], ttl)
    end
  end
end
if finished > 0 then
  redis.call('DECRBY', KEYS[1], finished)
end
return finished
"""


class QueueFull(Exception):
    def __init__(self, depth: int) -> None:
        super().__init__(f"{depth} images are queued")
        self.depth = depth


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a job ended: a result per image, or one error for all of them."""

    status: str
    results: list[ImageResult] | None = None
    error: str | None = None

    @classmethod
    def done(cls, results: list[ImageResult]) -> Outcome:
        return cls(DONE, results=results)

    @classmethod
    def failed(cls, error: str) -> Outcome:
        return cls(FAILED, error=error)

    def to_json(self) -> str:
        return json.dumps({"results": self.results} if self.status == DONE else {"error": self.error})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Outcome:
        data = json.loads(raw)
        if "results" in data:
            return cls.done(data["results"])
        return cls.failed(data["error"])


@dataclasses.dataclass(frozen=True)
class JobRecord:
    job_id: str
    status: str
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
    reply: bool
    outcome: Outcome


class JobStore:
    def __init__(self, client: redis.Redis, *, result_ttl_s: int, max_queue_depth: int) -> None:
        self._redis = client
        self._ttl = result_ttl_s
        self._max_depth = max_queue_depth
        self._admit = client.register_script(_ADMIT)
        self._start = client.register_script(_START)
        self._finish = client.register_script(_FINISH)

    def admit(self, job_id: str, filenames: Sequence[str]) -> None:
        """Record a new queued job, or raise :class:`QueueFull` if its images would not fit."""
        admitted, depth = self._admit(
            keys=[keys.job(job_id), keys.QUEUED_IMAGES],
            args=[len(filenames), self._max_depth, self._ttl, time.time(), json.dumps(list(filenames))],
        )
        if not admitted:
            raise QueueFull(int(depth))

    def withdraw(self, jobs: dict[str, int]) -> None:
        """Forget admitted jobs (id -> image count) that could not be sent to the workers."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*(keys.job(job_id) for job_id in jobs))
            pipe.decrby(keys.QUEUED_IMAGES, sum(jobs.values()))
            pipe.execute()

    def start(self, job_ids: Sequence[str]) -> None:
        self._start(keys=[keys.job(job_id) for job_id in job_ids], args=[time.time()])

    def finish(self, finished: Sequence[Finished]) -> None:
        script_keys: list[str] = [keys.QUEUED_IMAGES]
        args: list[object] = [self._ttl, time.time()]
        for job in finished:
            script_keys += [keys.job(job.job_id), keys.job_reply(job.job_id)]
            args += [job.outcome.status, job.count, job.outcome.to_json(), int(job.reply)]
        self._finish(keys=script_keys, args=args)

    def get(self, job_id: str) -> JobRecord | None:
        fields = {k.decode(): v for k, v in self._redis.hgetall(keys.job(job_id)).items()}
        if not fields:
            return None
        return JobRecord(
            job_id=job_id,
            status=fields["status"].decode(),
            filenames=json.loads(fields.get("filenames", b"[]")),
            created_at=_float(fields.get("created_at")),
            started_at=_float(fields.get("started_at")),
            finished_at=_float(fields.get("finished_at")),
            outcome=Outcome.from_json(fields["outcome"]) if "outcome" in fields else None,
        )

    def wait(self, job_id: str, timeout_s: float) -> Outcome | None:
        """The outcome of a job admitted with a reply, or None if it did not come in time."""
        popped = self._redis.blpop([keys.job_reply(job_id)], timeout=timeout_s)
        return None if popped is None else Outcome.from_json(popped[1])

    def queued_images(self) -> int:
        return int(self._redis.get(keys.QUEUED_IMAGES) or 0)


def _float(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)
