"""A model's ``config.json`` in the repository: how inferq serves it, beside what its signature says.

Every key is optional; a key that is unknown or holds a value it cannot take is refused at load with
a :class:`ConfigError` naming the file and the key. ``labels`` may instead come from a ``labels.txt``
beside ``config.json`` (one class name a line). No TensorFlow is imported here: the worker reads the
file, and the config travels to the API in heartbeats with the model's :class:`~inferq.model_spec.ModelSpec`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path

CONFIG_FILE = "config.json"
LABELS_FILE = "labels.txt"
DEFAULT_SIGNATURE = "serving_default"

#: How an uploaded image's pixels 0..255 are mapped to the model's input values.
SCALES = ("0..255", "0..1", "-1..1")
#: How an uploaded image is brought to the model's height and width: ``stretch`` to it, ``fit`` it
#: inside (aspect kept, padded with black), or ``crop`` its centre (aspect kept, filling it).
RESIZE_MODES = ("stretch", "fit", "crop")
#: ``standard``: the steps above; ``mnist``: MNIST's own (a white digit on black, fitted in 20x20 and
#: centred by its centre of mass in 28x28, as the dataset was made).
PREPROCESSING = ("standard", "mnist")


class ConfigError(ValueError):
    """A config.json (or labels.txt) that inferq cannot serve a model by."""


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    preprocessing: str = "standard"
    #: 1 (grayscale) or 3 (RGB); None: what the input's shape says (its last dimension, else 1).
    channels: int | None = None
    scale: str = "0..255"
    #: Whether to make dark light and light dark before scaling (white-on-black models).
    invert: bool = False
    resize: str = "stretch"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which versions are served, as TF Serving's ``model_version_policy``: the newest ``latest``
    ones, or exactly the ``specific`` ones that are present."""

    latest: int | None = 1
    specific: tuple[int, ...] | None = None

    def select(self, versions: list[int]) -> list[int]:
        """The versions to serve among those present, oldest first."""
        present = sorted(versions)
        if self.specific is not None:
            return [version for version in present if version in self.specific]
        return present[-(self.latest or 1):]

    def to_json(self) -> dict:
        return {"specific": list(self.specific)} if self.specific is not None else {"latest": self.latest}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    #: Images (or rows) a batch of this model is run at; None: MAX_BATCH_SIZE.
    max_batch_size: int | None = None
    #: How long a batch waits for more work after its first; None: MAX_BATCH_WAIT_MS.
    max_batch_wait_ms: float | None = None
    signature: str = DEFAULT_SIGNATURE
    version_policy: VersionPolicy = VersionPolicy()
    #: Class names, in the order of the model's class dimension.
    labels: tuple[str, ...] | None = None
    #: How image uploads become the model's input; None: by the input's shape (``image_config_for``).
    image: ImageConfig | None = None

    def batch_size_or(self, default: int) -> int:
        """The items one call of this model holds at most: its own limit, else ``default``
        (the deployment's MAX_BATCH_SIZE). The one place that rule is written."""
        return self.max_batch_size or default

    def batch_wait_ms_or(self, default: float) -> float:
        """How long a batch of this model waits for more work: its own wait (0 included), else
        ``default`` (the deployment's MAX_BATCH_WAIT_MS)."""
        return default if self.max_batch_wait_ms is None else self.max_batch_wait_ms

    def to_json(self) -> dict:
        return {
            "max_batch_size": self.max_batch_size,
            "max_batch_wait_ms": self.max_batch_wait_ms,
            "signature": self.signature,
            "version_policy": self.version_policy.to_json(),
            "labels": list(self.labels) if self.labels is not None else None,
            "image": self.image.to_json() if self.image is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping, where: str = CONFIG_FILE) -> ModelConfig:
        """A config from parsed JSON, every key checked; ``where`` names the file in errors."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known: "
                              + ", ".join(field.name for field in dataclasses.fields(cls)))
        values: dict = {}
        for key in ("max_batch_size", "max_batch_wait_ms"):
            value = data.get(key)
            if value is None:
                continue
            number_types = (int,) if key == "max_batch_size" else (int, float)
            # Python's JSON reads NaN and Infinity: no wait can be either.
            if (isinstance(value, bool) or not isinstance(value, number_types)
                    or (isinstance(value, float) and not math.isfinite(value))
                    or value < (1 if key == "max_batch_size" else 0)):
                kind = "a positive integer" if key == "max_batch_size" else "a number of milliseconds, 0 or more"
                raise ConfigError(f"{where}: {key!r} must be {kind}, got {value!r}")
            values[key] = value
        if data.get("signature") is not None:
            if not isinstance(data["signature"], str) or not data["signature"]:
                raise ConfigError(f"{where}: 'signature' must be a signature's name, got {data['signature']!r}")
            values["signature"] = data["signature"]
        if data.get("version_policy") is not None:
            values["version_policy"] = _version_policy(data["version_policy"], where)
        if data.get("labels") is not None:
            labels = data["labels"]
            if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
                raise ConfigError(f"{where}: 'labels' must be a list of class names, got {labels!r}")
            values["labels"] = tuple(labels)
        if data.get("image") is not None:
            values["image"] = _image(data["image"], where)
        return cls(**values)


def _version_policy(value: object, where: str) -> VersionPolicy:
    what = f"{where}: 'version_policy'"
    if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in ("latest", "specific"):
        raise ConfigError(f"{what} must be {{\"latest\": N}} or {{\"specific\": [versions]}}, got {value!r}")
    (kind, argument), = value.items()
    if kind == "latest":
        if isinstance(argument, bool) or not isinstance(argument, int) or argument < 1:
            raise ConfigError(f"{what}: 'latest' must be a positive integer, got {argument!r}")
        return VersionPolicy(latest=argument)
    if (not isinstance(argument, list) or not argument
            or not all(isinstance(version, int) and not isinstance(version, bool) and version >= 0
                       for version in argument)):
        raise ConfigError(f"{what}: 'specific' must be a list of version numbers, got {argument!r}")
    return VersionPolicy(latest=None, specific=tuple(sorted(set(argument))))


def _image(value: object, where: str) -> ImageConfig:
    what = f"{where}: 'image'"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be an object, got {value!r}")
    known = {field.name for field in dataclasses.fields(ImageConfig)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"{what}: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    choices = {"preprocessing": PREPROCESSING, "scale": SCALES, "resize": RESIZE_MODES}
    for key, allowed in choices.items():
        if key in value and value[key] not in allowed:
            raise ConfigError(f"{what}: {key!r} must be one of {', '.join(map(repr, allowed))}, got {value[key]!r}")
    channels = value.get("channels")
    if channels is not None and (type(channels) is not int or channels not in (1, 3)):
        raise ConfigError(f"{what}: 'channels' must be 1 or 3, got {value['channels']!r}")
    if "invert" in value and not isinstance(value["invert"], bool):
        raise ConfigError(f"{what}: 'invert' must be true or false, got {value['invert']!r}")
    return ImageConfig(**value)


def load(model_dir: str | Path) -> ModelConfig:
    """The config of the model in ``model_dir`` (``<repository>/<name>``); defaults where it has none."""
    root = Path(model_dir)
    path, labels_path = root / CONFIG_FILE, root / LABELS_FILE
    config = ModelConfig()
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"{path}: not readable JSON: {exc}") from None
        config = ModelConfig.from_json(data, str(path))
    if config.labels is None and labels_path.is_file():
        try:
            names = [line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{labels_path}: not readable: {exc}") from None
        names = [name for name in names if name]
        if not names:
            raise ConfigError(f"{labels_path}: no class names in it")
        config = dataclasses.replace(config, labels=tuple(names))
    return config


def config_from_json(data: Mapping | None) -> ModelConfig:
    """The config as :meth:`ModelConfig.to_json` wrote it (heartbeats)."""
    if not data:
        return ModelConfig()
    cleaned = {key: value for key, value in data.items() if value is not None}
    return ModelConfig.from_json(cleaned, "heartbeat")
