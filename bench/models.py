"""The models a benchmark run serves: one per regime by default, or any SavedModel that takes MNIST images.

Each is a model directory (``<dir>/<version>/saved_model.pb``) that inferq's workers (``bench.systems``
serves it as the default model) and the seed's reference server both load. The three regimes, by
what a request's time goes to:

- ``mnist``, the seed's MLP (784-256-256-10, the repository's ``mnist``, ``<MODEL_REPOSITORY>/mnist``, or
  MODEL_DIR's model where that is set; trained there if there is none): a model call costs less than
  the HTTP request around it — HTTP-bound.
- ``mnist_cnn``, the trainer's CNN (``<MODEL_REPOSITORY>/mnist_cnn``, where ``make train ARCH=cnn`` puts
  it; untrained when there is none, since training it takes minutes, longer than the benchmark):
  arithmetic per image dominates — compute-bound.
- ``wide_mlp``, 784-2048x4-10, untrained: 56 MB of weights read on every call, whatever the batch, so
  a call of one image costs a good part of what a call of 64 does — weight-bound.

Untrained models are built here, in the run's temporary directory, and written by the trainer's
export, so they keep the same contract as trained ones; their answers are noise ("wrong" counts are
meaningless for them), their costs are the real ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from inferq import mnist_contract, repository
from inferq.repository import Repository
from inferq.settings import Settings

REGIMES = {"mnist": "HTTP-bound", "mnist_cnn": "compute-bound", "wide_mlp": "weight-bound"}
#: The seed's MLP, whose regime the default quick run measures.
DEFAULT = "mnist"
CNN_DIR_NAME = "mnist_cnn"
WIDE_WIDTH, WIDE_DEPTH = 2048, 4


class BenchModelError(Exception):
    """MODEL names nothing a benchmark can serve."""


@dataclasses.dataclass(frozen=True)
class BenchModel:
    name: str
    regime: str
    model_dir: str
    #: Where it came from, for the report: trained (and how well), untrained, or given.
    origin: str


def resolve(spec: str | None, *, quick: bool, settings: Settings, data_dir: Path, work: Path) -> list[BenchModel]:
    """The models to run: the three regimes (quick: the default one only) when ``spec`` is None, else
    the one ``spec`` names — a regime's name, a directory of versions, a SavedModel directory, or the
    name of a model in MODEL_REPOSITORY."""
    if spec is None:
        return [_regime_model(name, settings, data_dir, work) for name in ([DEFAULT] if quick else REGIMES)]
    if spec in REGIMES:
        return [_regime_model(spec, settings, data_dir, work)]
    path = Path(spec)
    if not path.exists():
        path = next((named for named in _named(spec, settings) if named.is_dir()), path)
    name = path.resolve().name
    if (path / repository.SAVED_MODEL_FILE).is_file():
        if name.isdigit():  # a version directory: named by its model too
            name = f"{path.resolve().parent.name}-{name}"
        # One SavedModel: served as version 1 of a model directory of its own.
        model_dir = work / "models" / name
        model_dir.mkdir(parents=True)
        (model_dir / "1").symlink_to(path.resolve(), target_is_directory=True)
        return [BenchModel(name, "given", str(model_dir), f"the SavedModel {path}")]
    version = repository.newest_version(path)
    if version is None:
        raise BenchModelError(
            f"MODEL={spec}: not a SavedModel directory, a directory of versions, a model of "
            f"{settings.model_repository}/, or one of {', '.join(REGIMES)}"
        )
    return [BenchModel(name, "given", str(path), _trained_origin(path, version))]


def _regime_model(name: str, settings: Settings, data_dir: Path, work: Path) -> BenchModel:
    regime = REGIMES[name]
    if name == "mnist":
        model_dir = mnist_dir(settings)
        if repository.newest_version(model_dir) is None:
            print(f"bench: no model in {model_dir}/; training one", flush=True)
            # MODEL_DIR names the trainer's output directory itself, wherever the model is.
            subprocess.run([sys.executable, "-m", "trainer", "--params", "config/model.json"], check=True,
                           env={**os.environ, "MNIST_DATA_DIR": str(data_dir), "MODEL_DIR": str(model_dir)})
        version = repository.newest_version(model_dir)
        return BenchModel(name, regime, str(model_dir), _trained_origin(model_dir, version))
    if name == "mnist_cnn":
        places = _named(CNN_DIR_NAME, settings)
        for model_dir in places:
            version = repository.newest_version(model_dir)
            if version is not None:
                return BenchModel(name, regime, str(model_dir), _trained_origin(model_dir, version))
        built = write_untrained_cnn(work / "models" / name)
        return BenchModel(name, regime, str(built), f"untrained (no model in {places[0]}/: `make train ARCH=cnn`)")
    built = write_wide_mlp(work / "models" / name)
    return BenchModel(name, regime, str(built), f"untrained 784-{WIDE_WIDTH}x{WIDE_DEPTH}-10, built for the run")


def trained_mnist_dir(settings: Settings, program: str) -> Path | None:
    """:func:`mnist_dir` when it holds a version; else None, after saying so for ``program``."""
    model_dir = mnist_dir(settings)
    if repository.newest_version(model_dir) is None:
        print(f"{program}: no model in {model_dir}/; `make train` makes one", file=sys.stderr)
        return None
    return model_dir


def mnist_dir(settings: Settings) -> Path:
    """The seed's MLP: MODEL_DIR where it is set (the first releases' one model), else the
    repository's ``mnist``, where ``make train`` and ``make up`` put it."""
    if settings.model_dir:
        return Path(settings.model_dir)
    return Repository(settings.model_repository, single_model_name=settings.model_name).model_dir(DEFAULT)


def _named(name: str, settings: Settings) -> list[Path]:
    """Where a model called ``name`` may be, in order: the repository's model of that name, then,
    with MODEL_DIR set, a directory of that name under it (where the first releases' layout kept the
    CNN)."""
    if not repository.NAME_PATTERN.fullmatch(name):
        return []
    places = [Path(settings.model_repository) / name]
    if settings.model_dir:
        places.append(Path(settings.model_dir) / name)
    return places


def write_wide_mlp(model_dir: Path, width: int = WIDE_WIDTH, depth: int = WIDE_DEPTH) -> Path:
    """``model_dir`` holding version 1: a 784-width x depth-10 MLP with Glorot-random weights."""
    import keras

    keras.utils.set_random_seed(1)
    layers = [keras.layers.Dense(width, activation="relu", name=f"hidden_{i + 1}") for i in range(depth)]
    model = keras.Sequential(
        [keras.Input((mnist_contract.N_INPUT,)), keras.layers.Rescaling(1.0 / 255.0, name="scale"), *layers,
         keras.layers.Dense(mnist_contract.N_CLASSES, name="logits")],
        name="wide_mlp",
    )
    return _write(model, model_dir)


def write_untrained_cnn(model_dir: Path) -> Path:
    """``model_dir`` holding version 1: the trainer's CNN, as initialised, not trained."""
    import keras

    from trainer.networks import build_cnn
    from trainer.params import TrainParams

    keras.utils.set_random_seed(1)
    return _write(build_cnn(TrainParams(arch="cnn")), model_dir)


def _write(model, model_dir: Path) -> Path:
    from trainer.export import write_saved_model

    write_saved_model(model, repository.version_dir(model_dir, 1))
    return model_dir


def _trained_origin(model_dir: Path, version: int | None) -> str:
    metrics_file = repository.version_dir(model_dir, version or 0) / mnist_contract.METRICS_FILE
    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, ValueError):
        return f"version {version} of {model_dir}"
    if "test_accuracy" not in metrics:
        return f"version {version} of {model_dir}"
    return f"version {version} of {model_dir}, test accuracy {metrics['test_accuracy']:.4f}"
