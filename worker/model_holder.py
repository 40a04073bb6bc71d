"""One model's loaded versions, kept in step with its directory and its version policy.

The versions to serve are those the model's ``version_policy`` picks (TF Serving's semantics: the
newest one by default) among the versions present and not refused. A new version is loaded beside
the ones served and swapped in whole, so a batch runs on one version from start to end and none
waits for the load; removing the newest directory rolls back to the one before. A version that
fails to load is refused once, logged, and never tried again by this process; the others keep
serving. ``config.json`` is read again at each refresh: a change of labels, batching or policy
takes effect within a heartbeat; a config that does not load is logged and the last good one kept.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from inferq import model_config, repository
from inferq.model_config import ConfigError, ModelConfig
from inferq.model_spec import ModelSpec
from worker.model import LoadedModel, ModelLoadError, load_version

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, name: str, model_dir: str | Path, *, intra_op_threads: int = 0,
                 inter_op_threads: int = 0) -> None:
        self.name = name
        self.model_dir = Path(model_dir)
        self._threads = {"intra_op_threads": intra_op_threads, "inter_op_threads": inter_op_threads}
        self._refused: set[int] = set()
        self._config_error: str | None = None
        self.config = ModelConfig()
        #: The versions served, by number.
        self.loaded: dict[int, LoadedModel] = {}

    def refresh(self) -> bool:
        """Load the versions the policy wants and drop the others; True if anything was loaded."""
        self._read_config()
        present = [version for version in repository.versions(self.model_dir) if version not in self._refused]
        wanted = self.config.version_policy.select(present)
        # Built aside and swapped in whole: a batch reading ``loaded`` from another thread sees the
        # versions before or after, never a dict changing under it.
        loaded = dict(self.loaded)
        loaded_any = False
        for version in wanted:
            if version not in loaded and (model := self._load(version)) is not None:
                loaded[version] = model
                loaded_any = True
        for model in loaded.values():
            # A batch bounds its calls by the spec's config: a changed max_batch_size holds from now.
            if model.spec.config != self.config:
                model.spec = dataclasses.replace(model.spec, config=self.config)
        keep = {version for version in wanted if version in loaded}
        if keep or not present:
            for version in set(loaded) - keep:
                log.info("model %s: no longer serving version %d", self.name, version)
                del loaded[version]
        self.loaded = loaded
        return loaded_any

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
            # version is refused once: retrying it every heartbeat would only fail again.
            self._refused.add(version)
            log.error("model %s: refused version %d, still serving %s: %s", self.name, version,
                      sorted(self.loaded) or "none", exc, exc_info=not isinstance(exc, ModelLoadError))
            return None
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
