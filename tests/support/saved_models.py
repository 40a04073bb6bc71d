"""A model repository of small TensorFlow 2 SavedModels, each there to exercise one thing generic serving must do.

- ``mnist_like``: an image classifier on uint8 ``image`` ``[N, 28, 28, 1]`` giving ``scores`` ``[N, 10]``
  (softmax), whose class names come from its config.json, not the graph: a model with neither the
  contract's tensor names nor its flat 784 pixels.
- ``cifar_like``: RGB float32 ``image`` ``[N, 32, 32, 3]`` scaled -1..1 -> ``probabilities`` ``[N, 10]``;
  a Keras 3 model written by Keras' own exporter (``ExportArchive``), as Keras users write them.
- ``tabular``: float32 ``features`` ``[N, 4]`` -> two outputs, a regression ``value`` ``[N, 1]`` and
  ``class_probabilities`` ``[N, 3]``: no image at all, and more than one answer.
- ``two_inputs``: int64 ``ids`` and float32 ``weights``, both ``[N, 16]`` -> float32 ``score`` ``[N]``
  and int32 ``count`` ``[N]``: inputs of different types fed together.
- ``text``: string ``text`` ``[N]`` -> int32 ``length`` and string ``echo`` (upper-cased) ``[N]``:
  strings in and out.

Each is written as the repository expects (``<repo>/<name>/<version>/``, by a rename of a finished
directory; ``<repo>/<name>/config.json`` where the model needs one), has fixed weights, and answers
the same on every build. :func:`offline_outputs` is the test oracle: the model's own answer, from
``tf.saved_model.load`` in eager mode, which shares nothing with the worker's TF1 session.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

SIGNATURE = "serving_default"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IRIS_CLASSES = ("setosa", "versicolor", "virginica")
WORDS = (b"", b"a", b"digit", b"Queue", b"batch inference", "caf\u00e9".encode(), b"x" * 40, b"\x00nul")


def build_mnist_like(repo: Path, version: int = 1) -> Path:
    import tensorflow as tf

    rng = np.random.default_rng(10)
    # uint8 pixels in: the model scales them itself, so the image pipeline sends them unscaled.
    _write_config(repo / "mnist_like", {"labels": list(DIGITS), "image": {"channels": 1, "scale": "0..255"}})

    class MnistLike(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = tf.Variable(rng.normal(0.0, 0.05, (784, 10)).astype(np.float32))
            self.bias = tf.Variable(rng.normal(0.0, 0.1, 10).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.uint8, name="image")])
        def serve(self, image):
            pixels = tf.reshape(tf.cast(image, tf.float32) / 255.0, [-1, 784])
            return {"scores": tf.nn.softmax(pixels @ self.kernel + self.bias)}

    return _save_module(repo, "mnist_like", version, MnistLike())


def build_cifar_like(repo: Path, version: int = 1) -> Path:
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(20)
    _write_config(repo / "cifar_like", {"labels": list(CIFAR_CLASSES), "image": {"channels": 3, "scale": "-1..1"}})
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.AveragePooling2D(4),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.set_weights([rng.normal(0.0, 0.3, (192, 10)).astype(np.float32), rng.normal(0.0, 0.1, 10).astype(np.float32)])

    def write(directory: Path) -> None:
        # ExportArchive, not tf.saved_model.save of a tf.Module holding the model: that one's
        # variables do not restore in a TF1 loader, nor in TF Serving.
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            SIGNATURE, lambda image: {"probabilities": model(image, training=False)},
            input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32, name="image")],
        )
        archive.write_out(str(directory), verbose=False)

    return _save(repo, "cifar_like", version, write)


def build_tabular(repo: Path, version: int = 1) -> Path:
    import tensorflow as tf

    rng = np.random.default_rng(30)
    _write_config(repo / "tabular", {"labels": list(IRIS_CLASSES)})

    class Tabular(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.value_kernel = tf.Variable(rng.normal(0.0, 1.0, (4, 1)).astype(np.float32))
            self.hidden = tf.Variable(rng.normal(0.0, 1.0, (4, 8)).astype(np.float32))
            self.classes = tf.Variable(rng.normal(0.0, 1.0, (8, 3)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
        def serve(self, features):
            return {
                "value": features @ self.value_kernel + 0.5,
                "class_probabilities": tf.nn.softmax(tf.nn.relu(features @ self.hidden) @ self.classes),
            }

    return _save_module(repo, "tabular", version, Tabular())


def build_two_inputs(repo: Path, version: int = 1) -> Path:
    import tensorflow as tf

    class TwoInputs(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = tf.Variable(0.5)

        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.int64, name="ids"),
                                      tf.TensorSpec([None, 16], tf.float32, name="weights")])
        def serve(self, ids, weights):
            return {
                "score": tf.reduce_sum(tf.cast(ids, tf.float32) * weights, axis=1) * self.scale,
                "count": tf.math.count_nonzero(ids, axis=1, dtype=tf.int32),
            }

    return _save_module(repo, "two_inputs", version, TwoInputs())


def build_text(repo: Path, version: int = 1) -> Path:
    import tensorflow as tf

    class Text(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"length": tf.strings.length(text), "echo": tf.strings.upper(text)}

    return _save_module(repo, "text", version, Text())


BUILDERS: dict[str, Callable[[Path, int], Path]] = {
    "mnist_like": build_mnist_like,
    "cifar_like": build_cifar_like,
    "tabular": build_tabular,
    "two_inputs": build_two_inputs,
    "text": build_text,
}


def build_all(repo: Path) -> dict[str, Path]:
    """Version 1 of every model above in ``repo``: each model's version directory, by name."""
    return {name: build(repo, 1) for name, build in BUILDERS.items()}


def sample_inputs(name: str, n: int, random_seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` rows of valid input for model ``name``, the same for the same random_seed."""
    rng = np.random.default_rng(random_seed)
    if name == "mnist_like":
        return {"image": rng.integers(0, 256, (n, 28, 28, 1), np.uint8)}
    if name == "cifar_like":
        return {"image": rng.uniform(-1.0, 1.0, (n, 32, 32, 3)).astype(np.float32)}
    if name == "tabular":
        return {"features": rng.normal(0.0, 2.0, (n, 4)).astype(np.float32)}
    if name == "two_inputs":
        ids = rng.integers(0, 100, (n, 16), np.int64)
        ids[rng.random((n, 16)) < 0.3] = 0  # some padding, for count to count
        return {"ids": ids, "weights": rng.uniform(-1.0, 1.0, (n, 16)).astype(np.float32)}
    if name == "text":
        return {"text": np.array([WORDS[i] for i in rng.integers(0, len(WORDS), n)], dtype=object)}
    raise ValueError(f"no model {name!r}; there are {', '.join(BUILDERS)}")


def offline_outputs(model_path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The answers of ``serving_default`` for ``inputs``, from TensorFlow 2's own loader, eagerly."""
    import tensorflow as tf

    function = tf.saved_model.load(str(model_path)).signatures[SIGNATURE]
    answers = function(**{name: tf.constant(value) for name, value in inputs.items()})
    return {name: tensor.numpy() for name, tensor in answers.items()}


def _save_module(repo: Path, name: str, version: int, module) -> Path:
    import tensorflow as tf

    return _save(repo, name, version,
                 lambda directory: tf.saved_model.save(module, str(directory), signatures={SIGNATURE: module.serve}))


def _save(repo: Path, name: str, version: int, write: Callable[[Path], None]) -> Path:
    """``<repo>/<name>/<version>``, written by ``write`` in a temporary directory beside it, then renamed."""
    model_dir = repo / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=model_dir))
    write(staging)
    target = model_dir / str(version)
    os.rename(staging, target)
    return target


def _write_config(model_dir: Path, config: dict) -> None:
    """``config.json``, replaced whole, before the version that needs it appears."""
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".tmp-config-{os.getpid()}.json"
    staging.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, model_dir / "config.json")
