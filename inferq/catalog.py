"""The models the system serves, as the workers last described them: a hash in Redis that outlives them.

Heartbeats say what live workers serve, and expire with them; the catalog keeps each model's
description (every version served, its tensors and config) after its workers are gone, so that the
API still validates and admits work for a model whose workers are scaled to zero (started on demand
by their queue's length) or restarting. A worker writes the models it serves with each heartbeat
and deletes a model it served once the model is gone from the repository.
"""

from __future__ import annotations

import orjson
import redis

from inferq import keys
from inferq.model_spec import ModelSpec


class ModelCatalog:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def publish(self, specs: list[ModelSpec]) -> None:
        """Record each model's served versions (``specs``: every version of every model)."""
        by_model: dict[str, list[dict]] = {}
        for spec in sorted(specs, key=lambda spec: (spec.name, spec.version)):
            by_model.setdefault(spec.name, []).append(spec.to_json())
        if by_model:
            self._redis.hset(keys.MODELS, mapping={name: orjson.dumps(versions) for name, versions in by_model.items()})

    def remove(self, names: list[str]) -> None:
        if names:
            self._redis.hdel(keys.MODELS, *names)

    def models(self) -> dict[str, list[ModelSpec]]:
        """Each model's versions, oldest first."""
        return {name.decode(): [ModelSpec.from_json(spec) for spec in orjson.loads(raw)]
                for name, raw in sorted(self._redis.hgetall(keys.MODELS).items())}
