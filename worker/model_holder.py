"""The model a worker process serves, and its replacement when a new version appears.

The newest version under MODEL_DIR is the one to serve, as with TF Serving: a new version
directory is loaded beside the old model and swapped in whole, so a batch runs on one version from
start to end and none waits for the load; removing the newest directory rolls back to the one
before. A version that fails to load is refused once, logged, and never tried again by this
process; the old model keeps serving.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from inferq import model_contract as contract
from worker.model import LoadedModel, ModelLoadError, load_version

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, model_dir: str | Path, name: str, *, intra_op_threads: int = 0,
                 inter_op_threads: int = 0) -> None:
        self.model_dir = Path(model_dir)
        self.name = name
        self._threads = {"intra_op_threads": intra_op_threads, "inter_op_threads": inter_op_threads}
        self._refused: set[int] = set()
        self.current: LoadedModel | None = None

    def wait_for_model(self, stop: threading.Event, poll_s: float) -> LoadedModel | None:
        """Load the newest version, waiting for one to appear; None if ``stop`` is set first."""
        announced = False
        while True:
            self.refresh()
            if self.current is not None:
                return self.current
            if not announced:
                log.warning("no loadable model under %s yet; waiting for one", self.model_dir.resolve())
                announced = True
            if stop.wait(poll_s):
                return None

    def refresh(self) -> bool:
        """Swap in the newest version if it is not the one served; True if a model was loaded."""
        newest = contract.newest_version(self.model_dir)
        served = self.current.version if self.current is not None else None
        if newest is None or newest == served or newest in self._refused:
            return False
        try:
            model = load_version(self.model_dir, self.name, newest, **self._threads)
        except ModelLoadError as exc:
            self._refused.add(newest)
            log.error("refused model version %d, still serving %s: %s", newest, served, exc)
            return False
        self.current = model
        if served is not None:
            log.info("now serving model version %d (was %d)", newest, served)
        return True
