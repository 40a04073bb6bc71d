"""The model repository: which models there are, and which of their versions to serve.

Layout as TF Serving's and Triton's: ``MODEL_REPOSITORY/<name>/<version>/saved_model.pb``, with an
optional ``<name>/config.json`` (``inferq.model_config``). The rule, as TF Serving and Triton users
follow it: a version is written (or copied) under a name that is not an integer and renamed to its
number when complete, which is atomic within a filesystem; so a directory named by an integer that
holds ``saved_model.pb`` is taken as complete, and anything else (a trainer's ``.tmp-*``, a
``.3`` being copied) is ignored. A version copied straight into place breaks the rule: it may be
read half-written, fail to load, and is then tried again (``worker.model_holder``).

A repository whose own children are versions (the single-model layout of inferq's first releases)
is served as one model, named MODEL_NAME.

No TensorFlow is imported here: the worker's parent process reads the repository to know which
queues to consume before any model is loaded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from inferq.priorities import PRIORITIES

if TYPE_CHECKING:  # settings reads names through this module
    from inferq.settings import Settings

SAVED_MODEL_FILE = "saved_model.pb"
#: What a model's name may hold: it is part of queue names, Redis keys and URLs.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ModelNameError(ValueError):
    """A name no model can have."""


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name) or name in PRIORITIES:
        raise ModelNameError(f"{name!r} is not a model name: letters, digits, '_' and '-', up to 64, "
                             f"and not {' or '.join(map(repr, PRIORITIES))}")
    return name


def versions(model_dir: str | Path) -> list[int]:
    """The complete versions under ``model_dir``, oldest first."""
    root = Path(model_dir)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        # ASCII digits only: str.isdigit() takes "²" too, which int() does not.
        if entry.name.isascii() and entry.name.isdigit() and (entry / SAVED_MODEL_FILE).is_file():
            found.append(int(entry.name))
    return sorted(found)


def newest_version(model_dir: str | Path) -> int | None:
    found = versions(model_dir)
    return found[-1] if found else None


def version_dir(model_dir: str | Path, version: int) -> Path:
    return Path(model_dir) / str(version)


def is_single_model(root: str | Path) -> bool:
    """Whether ``root`` is one model's directory (versions as children) rather than a repository."""
    return bool(versions(root))


class Repository:
    def __init__(self, root: str | Path, *, single_model_name: str = "mnist") -> None:
        self.root = Path(root)
        #: The name a root laid out as one model's directory is served under.
        self.single_model_name = single_model_name

    def models(self) -> dict[str, Path]:
        """Each model's name and directory, for every model with at least one complete version."""
        if is_single_model(self.root):
            return {self.single_model_name: self.root}
        if not self.root.is_dir():
            return {}
        found = {}
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and NAME_PATTERN.fullmatch(entry.name) and entry.name not in PRIORITIES \
                    and versions(entry):
                found[entry.name] = entry
        return found

    def model_dir(self, name: str) -> Path:
        """Where model ``name`` lives (it may not exist yet)."""
        if is_single_model(self.root) and name == self.single_model_name:
            return self.root
        return self.root / check_name(name)


def models_to_serve(settings: Settings) -> dict[str, Path]:
    """The repository's models (MODEL_REPOSITORY, or MODEL_DIR's one) that a worker with these
    settings serves (WORKER_MODELS, else all), by name."""
    wanted = settings.served_models
    found = Repository(settings.repository_root, single_model_name=settings.model_name).models()
    return {name: path for name, path in found.items() if wanted is None or name in wanted}
