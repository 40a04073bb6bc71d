"""The models the API takes work for, and at which versions: the workers' catalog, read through a cache.

Every route that queues work looks its model up here first, so that a request for a model, version
or input that does not exist is refused before anything is queued. A model's versions are those its
live workers serve (while workers move to a new version, both), and where none is alive those the
catalog (``inferq.catalog``) last recorded: it outlives the workers, so that work is still admitted
for a model whose workers are scaled to zero. Both are read again at most every ``ttl_s``: a
request does not pay Redis round trips and the parsing of every model's description to learn what
changes once a heartbeat at most.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from werkzeug.routing import BaseConverter

from api.errors import ApiError, unavailable
from inferq import messages
from inferq.catalog import ModelCatalog
from inferq.model_spec import ModelSpec, TensorSpec
from inferq.workers import WorkerRegistry, WorkerStatus


class ModelName(BaseConverter):
    """A model's name in a URL (``<model:name>``): it stops at a colon, so that TF Serving's
    ``/v1/models/mnist:predict`` is model "mnist", verb "predict"."""

    regex = "[^/:]+"


@dataclasses.dataclass(frozen=True)
class Served:
    """A model at the version a request named, else its newest."""

    spec: ModelSpec
    #: Every version served, oldest first.
    versions: list[int]
    #: Whether the request named the version: then no other version may answer it.
    addressed: bool

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    def output(self, name: object) -> TensorSpec:
        found = self.spec.output(name) if isinstance(name, str) else None
        if found is None:
            raise ApiError(400, f"model {self.name!r} version {self.version} has no output {name!r}; it has "
                                + ", ".join(repr(tensor.name) for tensor in self.spec.outputs))
        return found


class ServedModels:
    def __init__(self, catalog: ModelCatalog, workers: WorkerRegistry, *, ttl_s: float) -> None:
        self._catalog = catalog
        self._workers = workers
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._models: dict[str, list[ModelSpec]] = {}
        self._features: set[str] = set()
        self._read_at = -float("inf")

    def all(self) -> dict[str, list[ModelSpec]]:
        """Each model's served versions, oldest first. Redis errors propagate (a 503)."""
        self._read()
        return self._models

    def workers_read(self, feature: str) -> bool:
        """Whether every live worker reads messages with ``feature`` (``inferq.messages.FEATURES``).
        With none alive, yes: the workers that start next are presumed of this release."""
        self._read()
        return feature in self._features

    def _read(self) -> None:
        if time.monotonic() - self._read_at > self._ttl_s:
            with self._lock:
                if time.monotonic() - self._read_at > self._ttl_s:
                    live = self._workers.live()
                    self._models = _served(self._catalog.models(), live)
                    self._features = (set.intersection(*(set(worker.message_features) for worker in live))
                                      if live else set(messages.FEATURES))
                    self._read_at = time.monotonic()

    def find(self, name: str, version: int | None = None, *, expected: bool = False) -> Served:
        """Model ``name`` at ``version`` (None: its newest), or a 404 saying what there is. A model
        ``expected`` to be there (the default model) that no worker has described yet is a 503: it
        is on its way (a worker loading it), not a wrong name."""
        models = self.all()
        specs = models.get(name)
        if not specs and expected:
            raise unavailable(f"no worker has loaded model {name!r} yet; try again shortly", reason="no_worker")
        if not specs:
            known = ", ".join(map(repr, models)) or "none yet"
            raise ApiError(404, f"no model {name!r}; served: {known}")
        versions = [spec.version for spec in specs]
        if version is not None and version not in versions:
            raise ApiError(404, f"model {name!r} version {version} is not served; served: "
                                + ", ".join(map(str, versions)))
        chosen = specs[-1] if version is None else specs[versions.index(version)]
        return Served(chosen, versions, version is not None)


def _served(catalogued: dict[str, list[ModelSpec]], live: list[WorkerStatus]) -> dict[str, list[ModelSpec]]:
    by_live: dict[str, dict[int, ModelSpec]] = {}
    for worker in live:
        for spec in worker.models:
            by_live.setdefault(spec.name, {})[spec.version] = spec
    served = {name: [versions[version] for version in sorted(versions)] for name, versions in by_live.items()}
    for name, specs in catalogued.items():
        served.setdefault(name, specs)
    return dict(sorted(served.items()))
