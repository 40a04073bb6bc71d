"""Where a queued job stands: the images ahead of it in its lane, and when it should start.

A lane is a model and a priority. Two counters per lane only grow (``inferq.keys.lane_admitted``,
``lane_finished``): the admission script adds a job's images to the first and keeps its value before
the job in the job's record (``lane_mark``), and every script that ends jobs (finish, withdraw, take
back; ``inferq.jobs._ENDED``) adds them to the second. What is still ahead of a queued job is
``lane_mark - lane_finished``, floored at 0, read in one round trip whatever the backlog.

The workers measure how fast each model's lanes drain (:class:`DrainMeter`): one worker at a time
samples the finished and queued counters every heartbeat interval, and the rate is the images
finished over the latest stretch of samples during which work was queued (at most ``window_s``):
time when nothing was queued says nothing about how fast work goes. A model's rate is for its two
lanes together, as its workers run both. Each tenant's rate is measured the same way, from its own
finished and queued counters (``inferq.keys.tenant_finished``, ``tenant_queued``), all its lanes
together: what a tenant over its queued-items limit is told to wait (its 429's Retry-After).

The estimate (:func:`position`) assumes the lanes keep that rate and nothing cuts in: for a bulk
job it adds the interactive images queued now (interactive work goes first), and counts none that
arrive later; for an interactive job it ignores bulk work aged past BULK_MAX_WAIT_S, which then
takes up to one claim in two. So it is a start time if the load stays as it is, not a promise.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import orjson
import redis

from inferq import keys
from inferq.fleet_turns import FleetTurn
from inferq.priorities import BULK, INTERACTIVE, PRIORITIES

log = logging.getLogger(__name__)

#: Samples kept per model: enough for the window at the shortest sensible interval.
MAX_SAMPLES = 120
#: Seconds a measured rate is shown after its last measurement (idle lanes measure nothing).
RATE_TTL_S = 3600
#: Bounds of a 503's Retry-After, in seconds: at least a second, and never so long that a client
#: would wait on an estimate of a load that has long changed.
RETRY_AFTER_BOUNDS_S = (1, 300)


def rate_from_samples(samples: Sequence[tuple[float, int, int]], window_s: float) -> float | None:
    """Images per second over the newest stretch of samples (time, finished, queued), newest first,
    in which every sample but the newest saw work queued, within ``window_s`` of the newest; None
    where that stretch is too short or drained nothing."""
    if len(samples) < 2:
        return None
    newest = samples[0]
    oldest = None
    for sample in samples[1:]:
        if sample[2] <= 0 or sample[0] < newest[0] - window_s or sample[1] > newest[1]:
            break
        oldest = sample
    if oldest is None or newest[0] <= oldest[0] or newest[1] <= oldest[1]:
        return None
    return (newest[1] - oldest[1]) / (newest[0] - oldest[0])


class DrainMeter:
    """A worker's periodic chore: sample the lanes of ``models()`` and the tenants the API
    published (``inferq.keys.TENANT_WEIGHTS``) if it is this worker's turn, and store each one's
    drain rate where one can be measured."""

    def __init__(self, client: redis.Redis, models: Callable[[], Sequence[str]], *, worker: str,
                 interval_s: float, window_s: float = 30.0) -> None:
        self._redis = client
        self._models = models
        self._window_s = window_s
        # One sampler an interval, whichever worker comes first: samples closer than that add nothing.
        self._turn = FleetTurn(client, keys.DRAIN_TURN, worker=worker, interval_s=interval_s,
                               hold_s=0.9 * interval_s)

    def maybe_sample(self) -> None:
        if not self._turn.taken():
            return
        for model in self._models():
            self.sample(model, time.time())
        for tenant in sorted(name.decode() for name in self._redis.hkeys(keys.TENANT_WEIGHTS)):
            self.sample_tenant(tenant, time.time())

    def sample(self, model: str, now: float) -> float | None:
        """Record one sample of ``model``'s lanes and answer (and store) its rate, if measured."""
        lanes = [(model, priority) for priority in PRIORITIES]
        counts = self._redis.mget([*(keys.lane_finished(*lane) for lane in lanes),
                                   *(keys.queued_images(*lane) for lane in lanes)])
        finished = sum(int(count or 0) for count in counts[:len(lanes)])
        queued = sum(int(count or 0) for count in counts[len(lanes):])
        return self._store_rate(keys.drain_samples(model), keys.drain_rate(model), finished, queued, now)

    def sample_tenant(self, tenant: str, now: float) -> float | None:
        """As :meth:`sample`, of one tenant's items, all its lanes together: what its 429s'
        Retry-After is read from."""
        finished, queued = self._redis.mget([keys.tenant_finished(tenant), keys.tenant_queued(tenant)])
        return self._store_rate(keys.tenant_drain_samples(tenant), keys.tenant_drain_rate(tenant),
                                int(finished or 0), int(queued or 0), now)

    def _store_rate(self, samples_key: str, rate_key: str, finished: int, queued: int, now: float) -> float | None:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.lpush(samples_key, orjson.dumps([now, finished, queued]))
            pipe.ltrim(samples_key, 0, MAX_SAMPLES - 1)
            pipe.lrange(samples_key, 0, -1)
            *_, raw = pipe.execute()
        rate = rate_from_samples([tuple(orjson.loads(item)) for item in raw], self._window_s)
        if rate is not None:
            self._redis.set(rate_key, orjson.dumps({"images_per_s": rate, "measured_at": now}), ex=RATE_TTL_S)
        return rate


def read_tenant_rate(client: redis.Redis, tenant: str) -> float | None:
    """``tenant``'s measured drain rate in items per second (all its lanes), or None if none is known."""
    raw = client.get(keys.tenant_drain_rate(tenant))
    return None if raw is None else float(orjson.loads(raw)["images_per_s"])


def read_rate(client: redis.Redis, model: str) -> float | None:
    """``model``'s measured drain rate in images per second, or None if none is known."""
    raw = client.get(keys.drain_rate(model))
    return None if raw is None else float(orjson.loads(raw)["images_per_s"])


def position(client: redis.Redis, *, model: str, priority: str, lane_mark: int | None,
             now: float | None = None) -> dict[str, object]:
    """A queued job's ``{"items_ahead", "drain_rate", "estimated_start"}``, None where unknown."""
    now = time.time() if now is None else now
    with client.pipeline(transaction=False) as pipe:
        pipe.get(keys.lane_finished(model, priority))
        pipe.get(keys.drain_rate(model))
        pipe.get(keys.queued_images(model, INTERACTIVE))
        finished, raw_rate, interactive = pipe.execute()
    ahead = None if lane_mark is None else max(0, lane_mark - int(finished or 0))
    rate = None if raw_rate is None else float(orjson.loads(raw_rate)["images_per_s"])
    start = None
    if ahead is not None and rate:
        # Interactive work queued now goes before a bulk job, whatever its place in its own lane.
        before = ahead + (int(interactive or 0) if priority == BULK else 0)
        start = now + before / rate
    return {"items_ahead": ahead, "drain_rate": rate, "estimated_start": start}


def retry_after_s(excess_images: int, rate: float | None, fallback_s: int) -> int:
    """Seconds until ``excess_images`` have drained at ``rate`` (``fallback_s`` where no rate is
    known), within :data:`RETRY_AFTER_BOUNDS_S`."""
    low, high = RETRY_AFTER_BOUNDS_S
    if not rate or rate <= 0:
        return min(max(fallback_s, low), high)
    return min(max(math.ceil(max(excess_images, 0) / rate), low), high)
