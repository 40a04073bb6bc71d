"""One model's loaded versions, kept in step with its directory and its version policy.

The versions to serve are those the model's ``version_policy`` picks (TF Serving's semantics: the
newest one by default) among the versions present and not waiting to be tried again. A new version is loaded beside
the ones served and swapped in whole, so a batch runs on one version from start to end and none
waits for the load; removing the newest directory rolls back to the one before. A version that
fails to load (a copy not finished, a file TensorFlow cannot parse) is logged, reported in the
heartbeat (``failures``), and tried again after a backoff that doubles from ``retry_first_s`` up to
``retry_max_s``; meanwhile the policy picks among the other versions, which keep serving. So a
version copied in place rather than renamed in (``inferq.repository``) is served once its copy is
done, by every worker, not only by those started after it. ``config.json`` is read again at each
refresh: a change of labels, batching or policy takes effect within a heartbeat; a config that
does not load is logged and the last good one kept.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from inferq import model_config, repository
from inferq.model_config import ConfigError, ModelConfig
from inferq.model_spec import ModelSpec
from worker.model import LoadedModel, ModelLoadError, load_version

log = logging.getLogger(__name__)

#: The first wait before a version that failed to load is tried again, and the longest.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


@dataclasses.dataclass(frozen=True)
class LoadFailure:
    """A version that did not load: how often it failed, why last, and when to try it again."""

    version: int
    attempts: int
    error: str
    retry_at: float


class ModelHolder:
    def __init__(self, name: str, model_dir: str | Path, *, intra_op_threads: int = 0,
                 inter_op_threads: int = 0, retry_first_s: float = RETRY_FIRST_S, retry_max_s: float = RETRY_MAX_S,
                 on_load_failure: Callable[[str, int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.model_dir = Path(model_dir)
        self._threads = {"intra_op_threads": intra_op_threads, "inter_op_threads": inter_op_threads}
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s
        self._on_load_failure = on_load_failure
        self._clock = clock
        #: The versions present that failed to load, by number, each tried again after its backoff.
        self._failures: dict[int, LoadFailure] = {}
        self._would_serve: set[int] = set()
        self._config_error: str | None = None
        self.config = ModelConfig()
        #: The versions served, by number.
        self.loaded: dict[int, LoadedModel] = {}

    def refresh(self) -> bool:
        """Load the versions the policy wants and drop the others; True if anything was loaded."""
        self._read_config()
        found = repository.versions(self.model_dir)
        # A version removed is forgotten with its failures: one copied in again starts afresh.
        self._failures = {version: failure for version, failure in self._failures.items() if version in found}
        now = self._clock()
        present = available = [version for version in found
                               if version not in self._failures or self._failures[version].retry_at <= now]
        # Built aside and swapped in whole: a batch reading ``loaded`` from another thread sees the
        # versions before or after, never a dict changing under it.
        loaded = dict(self.loaded)
        loaded_any = False
        # Twice at most: a version that fails now gives way at once to those the policy picks without it.
        for _ in range(2):
            wanted = self.config.version_policy.select(present)
            for version in wanted:
                if version not in loaded and (model := self._load(version)) is not None:
                    loaded[version] = model
                    loaded_any = True
            failed = [version for version in wanted if version not in loaded]
            if not failed:
                break
            present = [version for version in present if version not in failed]
        for model in loaded.values():
            # A batch bounds its calls by the spec's config: a changed max_batch_size holds from now.
            if model.spec.config != self.config:
                model.spec = dataclasses.replace(model.spec, config=self.config)
        keep = {version for version in wanted if version in loaded}
        if keep or not available:
            for version in set(loaded) - keep:
                log.info("model %s: no longer serving version %d", self.name, version)
                del loaded[version]
        self.loaded = loaded
        self._would_serve = set(self.config.version_policy.select(found))
        return loaded_any

    @property
    def failures(self) -> dict[int, LoadFailure]:
        """The versions that failed to load and are still news: the policy would serve them, or
        they are newer than a version served (an older one that failed is left behind)."""
        oldest = min(self.loaded, default=None)
        return {version: failure for version, failure in self._failures.items()
                if oldest is None or version > oldest or version in self._would_serve}

    def _read_config(self) -> None:
        try:
            config = model_config.load(self.model_dir)
        except ConfigError as exc:
            if str(exc) != self._config_error:
                log.error("model %s: %s; keeping the config it had", self.name, exc)
                self._config_error = str(exc)
            return
        self._config_error = None
        self.config = config

    def _load(self, version: int) -> LoadedModel | None:
        try:
            model = load_version(self.model_dir, self.name, version, config=self.config, **self._threads)
        except Exception as exc:
            # Whatever the reason (a SavedModel TensorFlow cannot parse raises its own errors), the
            # version is tried again later, not at every refresh: a copy still under way may finish,
            # a corrupt file will fail again and only costs a load at each backoff.
            previous = self._failures.get(version)
            attempts = previous.attempts + 1 if previous else 1
            wait_s = min(self._retry_max_s, self._retry_first_s * 2 ** (attempts - 1))
            self._failures[version] = LoadFailure(version, attempts, str(exc), self._clock() + wait_s)
            if self._on_load_failure is not None:
                self._on_load_failure(self.name, version)
            log.error("model %s: refused version %d, still serving %s: %s (attempt %d; tried again in %g s)",
                      self.name, version, sorted(self.loaded) or "none", exc, attempts, wait_s,
                      exc_info=not isinstance(exc, ModelLoadError) and attempts == 1)
            return None
        if self._failures.pop(version, None) is not None:
            log.info("model %s: version %d loaded after failing before", self.name, version)
        log.info("model %s: serving version %d", self.name, version)
        return model

    def model(self, version: int | None = None) -> LoadedModel | None:
        """The version asked for, or the newest served; None if it is not served."""
        loaded = self.loaded
        if version is None:
            return loaded[max(loaded)] if loaded else None
        return loaded.get(version)

    def specs(self) -> list[ModelSpec]:
        """What each served version takes and gives, with the model's current config."""
        loaded, config = self.loaded, self.config
        return [dataclasses.replace(loaded[version].spec, config=config) for version in sorted(loaded)]

    @property
    def max_batch_size(self) -> int | None:
        return self.config.max_batch_size
