"""Training parameters: the seed's ``model.json`` keys plus the trainer's own, checked before any work.

Keys (every one optional; a missing key takes the default below):

==================  =======================================================================
arch                the network (``trainer.networks``): ``mlp``, the seed's 784-n_hidden_1-n_hidden_2-10 and
                    the default, or ``cnn``, convolutions on the 28x28 image (n_hidden_* unused)
learning_rate       initial Adam learning rate, decayed to 0 along a cosine over the run
batch_size          images per training step
n_hidden_1          units of the MLP's first hidden layer
n_hidden_2          units of the MLP's second hidden layer
n_classes           must be 10 (the digits)
n_input             must be 784 (28x28 pixels, as the serving contract feeds)
save_path           where versions are written, ``<save_path>/<version>/``: the model's directory in
                    the repository (``models/mnist``), its last part the model's name
data_path           MNIST_DATA_DIR: the four IDX files (gzipped or not) or an mnist_png tree
epochs              passes over the training set (3, as the seed)
seed                seeds Python, NumPy and TensorFlow, so that a run can be repeated
max_train_images    train on the first N training images only (null: all 60,000); for quick runs
download            fetch missing IDX files from the usual mirrors (checksums verified)
==================  =======================================================================

The environment variables MODEL_DIR (the model's directory) or else MODEL_REPOSITORY (the repository
it goes in, under its name), and MNIST_DATA_DIR, when set, override save_path and data_path.
Relative paths are relative to the working directory (the repository root under ``make train``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import typing
from collections.abc import Mapping
from pathlib import Path

from inferq import mnist_contract
from inferq.settings import Settings
from trainer.errors import TrainerError

#: Parameter -> environment variable that overrides it, read through inferq's Settings.
ENV_OVERRIDES = {"save_path": "MODEL_DIR", "data_path": "MNIST_DATA_DIR"}

#: The networks the trainer builds (``trainer.networks``); named here so that a bad ``arch`` is refused
#: before TensorFlow is imported.
ARCHS = ("mlp", "cnn")


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """Validated parameters of one training run; constructing one checks every field."""

    arch: str = "mlp"
    learning_rate: float = 0.002
    batch_size: int = 100
    n_hidden_1: int = 256
    n_hidden_2: int = 256
    n_classes: int = mnist_contract.N_CLASSES
    n_input: int = mnist_contract.N_INPUT
    save_path: str = "models/mnist"
    data_path: str = "data/mnist"
    epochs: int = 3
    seed: int = 1
    max_train_images: int | None = None
    download: bool = True

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            _check_type(field.name, hints[field.name], getattr(self, field.name))
        if self.arch not in ARCHS:
            raise TrainerError(f"arch must be one of {', '.join(map(repr, ARCHS))}, got {self.arch!r}")
        if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise TrainerError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        object.__setattr__(self, "learning_rate", float(self.learning_rate))  # JSON's 1 means 1.0
        for name in ("batch_size", "n_hidden_1", "n_hidden_2", "n_classes", "n_input", "epochs"):
            _check_positive(name, getattr(self, name))
        if self.max_train_images is not None:
            _check_positive("max_train_images", self.max_train_images)
        # Only these shapes fit MNIST and the graph the workers feed.
        if self.n_input != mnist_contract.N_INPUT:
            raise TrainerError(
                f"n_input must be {mnist_contract.N_INPUT} (28x28 pixels, the serving contract's input), "
                f"got {self.n_input}"
            )
        if self.n_classes != mnist_contract.N_CLASSES:
            raise TrainerError(f"n_classes must be {mnist_contract.N_CLASSES} (the digits), got {self.n_classes}")
        if not 0 <= self.seed < 2**32:  # NumPy's seed range
            raise TrainerError(f"seed must be between 0 and 2**32 - 1, got {self.seed}")
        for name in ("save_path", "data_path"):
            if not getattr(self, name).strip():
                raise TrainerError(f"{name} must not be empty")

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


KEYS = tuple(field.name for field in dataclasses.fields(TrainParams))


def load_params(path: str | Path, environ: Mapping[str, str] | None = None) -> TrainParams:
    """The parameters in the JSON file ``path``, with MODEL_DIR / MNIST_DATA_DIR from ``environ``
    (default ``os.environ``) overriding save_path / data_path when set.

    Raises TrainerError, naming the file and the key, for anything wrong.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrainerError(f"parameters file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainerError(f"cannot read parameters file {path}: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrainerError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(raw, dict):
        raise TrainerError(f"{path}: must hold a JSON object of parameters, got {type(raw).__name__}")
    for key in raw:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise TrainerError(f"{path}: unknown key {key!r} ({hint}known keys: {', '.join(KEYS)})")
    values = {**raw, **env_overrides(os.environ if environ is None else environ,
                                     str(raw.get("save_path", TrainParams.save_path)))}
    try:
        return TrainParams(**values)
    except TrainerError as exc:
        raise TrainerError(f"{path}: {exc}") from None


def env_overrides(environ: Mapping[str, str], save_path: str = "models/mnist") -> dict[str, str]:
    """save_path / data_path from the variables that are set: MODEL_DIR (one model's directory),
    else MODEL_REPOSITORY (the model keeps its name, ``save_path``'s last part, in it); MNIST_DATA_DIR."""
    # Only these variables are parsed, so a bad unrelated setting (PORT=x) cannot stop a training run.
    relevant = {var: environ[var] for var in (*ENV_OVERRIDES.values(), "MODEL_REPOSITORY") if environ.get(var)}
    settings = Settings.from_env(relevant)
    overrides = {}
    if "MODEL_DIR" in relevant:
        overrides["save_path"] = str(settings.model_dir)
    elif "MODEL_REPOSITORY" in relevant:
        overrides["save_path"] = str(Path(settings.model_repository) / Path(save_path).name)
    if "MNIST_DATA_DIR" in relevant:
        overrides["data_path"] = settings.mnist_data_dir
    return overrides


def _check_type(name: str, hint: object, value: object) -> None:
    allowed = typing.get_args(hint) or (hint,)
    if value is None and type(None) in allowed:
        return
    kind = next(t for t in allowed if t is not type(None))
    # bool is an int in Python, but `"batch_size": true` is a mistake; an integer learning rate is not.
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        wanted = names[typing.cast(type, kind)] + (" or null" if type(None) in allowed else "")
        raise TrainerError(f"{name} must be {wanted}, got {json.dumps(value, default=repr)}")


def _check_positive(name: str, value: int) -> None:
    if value <= 0:
        raise TrainerError(f"{name} must be positive, got {value}")
