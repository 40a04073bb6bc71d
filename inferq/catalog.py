"""The models the system serves, as the workers last described them: a hash in Redis that outlives them.

Heartbeats say what live workers serve, and expire with them; the catalog keeps each model's
description (every version served, its tensors and config) after its workers are gone, so that the
API still validates and admits work for a model whose workers are scaled to zero (started on demand
by their queue's length) or restarting. A worker writes the models it serves with each heartbeat,
and when it did (``keys.MODELS_ANNOUNCED``), and deletes a model it served once the model is gone
from the repository.

A model can also leave while no worker looks: its workers restarted with a repository without it.
Nothing would ever delete it, and ``/readyz`` would wait for a worker of it for ever; so a model no
worker has announced for ``MODEL_FORGET_AFTER_S`` is forgotten (:meth:`ModelCatalog.models`).
"""

from __future__ import annotations

import time
from collections.abc import Collection

import orjson
import redis

from inferq import keys
from inferq.lua import Layout
from inferq.model_spec import ModelSpec

# Deletes the models named whose announcement is still older than the cutoff: a worker that
# announced one since it was read keeps it.
_FORGET_LAYOUT = Layout("forget_models", keys=("models", "announced"), args=("cutoff",), arg_list="names",
                        numbers={"cutoff"})
_FORGET = _FORGET_LAYOUT.script("""
local forgotten = {}
for i = names_offset + 1, names_offset + names_count do
    local at = redis.call('HGET', announced, ARGV[i])
    if at and tonumber(at) < cutoff then
        redis.call('HDEL', models, ARGV[i])
        redis.call('HDEL', announced, ARGV[i])
        forgotten[#forgotten + 1] = ARGV[i]
    end
end
return forgotten
""")


class ModelCatalog:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._forget = client.register_script(_FORGET)

    def publish(self, specs: list[ModelSpec]) -> None:
        """Record each model's served versions (``specs``: every version of every model), announced now."""
        by_model: dict[str, list[dict]] = {}
        for spec in sorted(specs, key=lambda spec: (spec.name, spec.version)):
            by_model.setdefault(spec.name, []).append(spec.to_json())
        if by_model:
            now = time.time()
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.MODELS, mapping={name: orjson.dumps(versions) for name, versions in by_model.items()})
                pipe.hset(keys.MODELS_ANNOUNCED, mapping=dict.fromkeys(by_model, repr(now)))
                pipe.execute()

    def remove(self, names: list[str]) -> None:
        if names:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(keys.MODELS, *names)
                pipe.hdel(keys.MODELS_ANNOUNCED, *names)
                pipe.execute()

    def models(self, *, forget_before: float | None = None, keep: Collection[str] = ()) -> dict[str, list[ModelSpec]]:
        """Each model's versions, oldest first. With ``forget_before`` (unix seconds), a model last
        announced before then is forgotten, deleted and not returned, unless ``keep`` names it (a
        live worker serves it: its heartbeat is an announcement)."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.MODELS)
            pipe.hgetall(keys.MODELS_ANNOUNCED)
            raw_models, announced = pipe.execute()
        models = {name.decode(): raw for name, raw in raw_models.items()}
        announced_at = {name.decode(): float(at) for name, at in announced.items()}
        unannounced = [name for name in models if name not in announced_at]
        if unannounced:
            # Written by a release that did not say when: its time to be forgotten counts from now.
            now = time.time()
            with self._redis.pipeline(transaction=False) as pipe:
                for name in unannounced:
                    pipe.hsetnx(keys.MODELS_ANNOUNCED, name, repr(now))
                pipe.execute()
        if forget_before is not None:
            stale = [name for name, at in announced_at.items() if at < forget_before and name in models
                     and name not in keep]
            if stale:
                for name in _FORGET_LAYOUT.call(self._forget, models=keys.MODELS, announced=keys.MODELS_ANNOUNCED,
                                                cutoff=forget_before, names=stale):
                    models.pop(name.decode(), None)
        return {name: [ModelSpec.from_json(spec) for spec in orjson.loads(raw)] for name, raw in sorted(models.items())}
