"""The models the API takes work for, and at which versions: the workers' catalog, read through a cache.

Every route that queues work looks its model up here first, so that a request for a model, version
or input that does not exist is refused before anything is queued. A model's versions are those its
live workers serve (while workers move to a new version, both), and where none is alive those the
catalog (``inferq.catalog``) last recorded: it outlives the workers, so that work is still admitted
for a model whose workers are scaled to zero, until it has gone unannounced for
``MODEL_FORGET_AFTER_S``. Both are read again at most every ``ttl_s``: a request does not pay Redis
round trips and the parsing of every model's description to learn what changes once a heartbeat at
most. A model the cache lacks is read again at once: the cache may say what is served, never what
is not.
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
from inferq.worker_registry import WorkerRegistry, WorkerStatus, served_versions


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
    def __init__(self, catalog: ModelCatalog, workers: WorkerRegistry, *, ttl_s: float,
                 forget_after_s: float = float("inf")) -> None:
        self._catalog = catalog
        self._workers = workers
        self._ttl_s = ttl_s
        self._forget_after_s = forget_after_s
        self._lock = threading.Lock()
        self._view = _View([], {}, set(messages.FEATURES))
        self._read_at = -float("inf")

    def all(self, *, fresh: bool = False) -> dict[str, list[ModelSpec]]:
        """Each model's served versions, oldest first; ``fresh``: read now, not from the cache. Redis
        errors propagate (a 503)."""
        return self._read(fresh=fresh).models

    def live(self, *, fresh: bool = False) -> list[WorkerStatus]:
        """The live workers read together with :meth:`all`: one view of who serves what."""
        return self._read(fresh=fresh).live

    def workers_read(self, feature: str) -> bool:
        """Whether every live worker reads messages with ``feature`` (``inferq.messages.FEATURES``).
        With none alive, yes: the workers that start next are presumed of this release."""
        return feature in self._read().features

    def _read(self, *, fresh: bool = False) -> _View:
        asked_at = time.monotonic()
        if fresh or asked_at - self._read_at > self._ttl_s:
            with self._lock:
                # A read that began after this one was asked for is as fresh as one of its own.
                if (self._read_at < asked_at) if fresh else (time.monotonic() - self._read_at > self._ttl_s):
                    read_at = time.monotonic()
                    live = self._workers.live()
                    # With no worker alive nothing says the catalog is out of date (all scaled to zero).
                    forget_before = time.time() - self._forget_after_s if live else None
                    catalogued = self._catalog.models(forget_before=forget_before, keep=served_versions(live))
                    features = (set.intersection(*(set(worker.message_features) for worker in live))
                                if live else set(messages.FEATURES))
                    self._view = _View(live, _served(catalogued, live), features)
                    self._read_at = read_at
        return self._view

    def find(self, name: str, version: int | None = None, *, expected: bool = False) -> Served:
        """Model ``name`` at ``version`` (None: its newest), or a 404 saying what there is. A model
        ``expected`` to be there (the default model) that no worker has described yet is a 503: it
        is on its way (a worker loading it), not a wrong name.

        Only what is served is taken from the cache: a model or version it lacks is looked up again
        before it is refused, since a cache read before a worker's first heartbeat would otherwise
        refuse a model that is served (and /readyz, reading afresh, already says so)."""
        models = self.all()
        if not _has(models, name, version):
            models = self.all(fresh=True)
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


@dataclasses.dataclass(frozen=True)
class _View:
    live: list[WorkerStatus]
    models: dict[str, list[ModelSpec]]
    features: set[str]


def _has(models: dict[str, list[ModelSpec]], name: str, version: int | None) -> bool:
    specs = models.get(name)
    return bool(specs) and (version is None or any(spec.version == version for spec in specs))


def _served(catalogued: dict[str, list[ModelSpec]], live: list[WorkerStatus]) -> dict[str, list[ModelSpec]]:
    by_live: dict[str, dict[int, ModelSpec]] = {}
    for worker in live:
        for spec in worker.models:
            by_live.setdefault(spec.name, {})[spec.version] = spec
    served = {name: [versions[version] for version in sorted(versions)] for name, versions in by_live.items()}
    for name, specs in catalogued.items():
        served.setdefault(name, specs)
    return dict(sorted(served.items()))
