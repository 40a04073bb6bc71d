"""The models a worker process serves: every model of the repository that WORKER_MODELS names.

Each refresh (a heartbeat) looks at the repository again: a model added is loaded, a model removed
is dropped, and each model's holder brings its versions in step with its directory. A batch for a
model this process has not loaded yet (its queue was taken up before the next refresh) loads it on
the spot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from inferq.model_spec import ModelSpec
from inferq.repository import models_to_serve
from inferq.settings import Settings
from worker.model import LoadedModel
from worker.model_holder import ModelHolder

log = logging.getLogger(__name__)


class LoadedModels:
    def __init__(self, settings: Settings, *, on_load_failure: Callable[[str, int], None] | None = None,
                 **holder_options: Any) -> None:
        self._settings = settings
        self._holder_options = {"intra_op_threads": settings.tf_intra_op_threads,
                         "inter_op_threads": settings.tf_inter_op_threads,
                         "on_load_failure": on_load_failure, **holder_options}
        self.holders: dict[str, ModelHolder] = {}
        #: Models dropped since :meth:`take_gone` was last asked.
        self._gone: set[str] = set()
        # The heartbeat thread refreshes while a batch may refresh to find a model: one at a time,
        # so that no version is loaded twice and no model dropped twice.
        self._refreshing = threading.Lock()

    def refresh(self) -> None:
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        found = models_to_serve(self._settings)
        for name in set(self.holders) - set(found):
            log.info("model %s: gone from the repository; no longer served", name)
            del self.holders[name]
            self._gone.add(name)
        for name, path in found.items():
            holder = self.holders.get(name)
            if holder is None or holder.model_dir != path:
                holder = self.holders[name] = ModelHolder(name, path, **self._holder_options)
            holder.refresh()

    def model(self, name: str, version: int | None) -> LoadedModel | None:
        found = self._served(name, version)
        if found is None:  # not loaded yet, or loading in the heartbeat's refresh: wait for that one
            self.refresh()
            found = self._served(name, version)
        return found

    def _served(self, name: str, version: int | None) -> LoadedModel | None:
        holder = self.holders.get(name)
        return holder.model(version) if holder is not None else None

    def take_gone(self) -> list[str]:
        """The models dropped since the last call, for the catalog to forget."""
        gone, self._gone = sorted(self._gone - set(self.holders)), set()
        return gone

    def specs(self) -> list[ModelSpec]:
        # A copy of the holders: a batch's refresh in another thread may add or drop one meanwhile.
        return [spec for holder in list(self.holders.values()) for spec in holder.specs()]

    def load_failures(self) -> list[dict]:
        """Each version found that did not load, as the heartbeat reports it."""
        return [{"model": holder.name, "version": failure.version, "attempts": failure.attempts,
                 "error": failure.error}
                for holder in list(self.holders.values()) for failure in sorted(holder.failures.values(),
                                                                                key=lambda failure: failure.version)]

    @property
    def any_loaded(self) -> bool:
        return any(holder.loaded for holder in list(self.holders.values()))
