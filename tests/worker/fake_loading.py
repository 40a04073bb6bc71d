"""Model loading without TensorFlow, for tests of what a worker serves: a fake ``load_version``
that records each load and refuses the versions it is told to, and versions on disk that are only
their directory and an empty ``saved_model.pb``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from inferq.model_config import ModelConfig
from inferq.model_spec import ANY, ModelSpec, TensorSpec
from worker.model import ModelLoadError

INPUT = TensorSpec("x", "float32", (ANY, 4), "x:0")
OUTPUT = TensorSpec("y", "int64", (ANY,), "y:0")


def add_version(model_dir: Path, version: int) -> Path:
    path = model_dir / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    return path


def remove_version(model_dir: Path, version: int) -> None:
    (model_dir / str(version) / "saved_model.pb").unlink()
    (model_dir / str(version)).rmdir()


class FakeLoaded:
    """What ``load_version`` gives: a version's spec (with the config it was loaded with)."""

    def __init__(self, path: Path, name: str, version: int, config: ModelConfig, threads: dict) -> None:
        self.path = str(path)
        self.spec = ModelSpec(name, version, config.signature, (INPUT,), (OUTPUT,), config)
        self.threads = threads

    @property
    def version(self) -> int:
        return self.spec.version


class Loader:
    """A fake ``worker.model.load_version``: records each (name, version) loaded, refuses those in
    ``refuse``, and can be held inside a load (``hold``) to catch a second load at the same time."""

    def __init__(self) -> None:
        self.loads: list[tuple[str, int]] = []
        self.refuse: set[tuple[str, int]] = set()
        self.hold: threading.Event | None = None
        self.loading = threading.Event()

    def __call__(self, model_dir, name: str, version: int, *, config: ModelConfig, **threads: int) -> FakeLoaded:
        self.loads.append((name, version))
        self.loading.set()
        if self.hold is not None:
            hold, self.hold = self.hold, None  # only the first load waits
            assert hold.wait(5)
        if (name, version) in self.refuse:
            raise ModelLoadError(f"{model_dir}/{version}: not a model this worker can serve")
        return FakeLoaded(Path(model_dir) / str(version), name, version, config, threads)


@pytest.fixture
def loader(monkeypatch) -> Loader:
    """``worker.model_holder``'s ``load_version`` replaced by a :class:`Loader`."""
    from worker import model_holder

    fake = Loader()
    monkeypatch.setattr(model_holder, "load_version", fake)
    return fake
