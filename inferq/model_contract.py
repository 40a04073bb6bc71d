"""The SavedModel contract between the trainer, which writes models, and the workers, which serve them.

Layout as TF Serving's: ``MODEL_DIR/<version>/saved_model.pb``; the highest integer version is the
one served. A version appears by an atomic rename of a finished directory, so a directory that is
there at all is complete; anything not named by an integer (a trainer's temporary directory) is
ignored.

Graph names are those the original Go server loaded (README: where the MNIST contract comes from):
the meta graph tagged ``model``, a placeholder ``inputdata`` (float32 ``[None, 784]``, raw 0..255
pixels, white digit on black) and an op ``inference`` (int64 ``[None]`` labels). Models from our
trainer add a ``serving_default`` signature with ``probabilities`` ``[None, 10]`` and ``labels``.
No TensorFlow is imported here.
"""

from __future__ import annotations

from pathlib import Path

TAG = "model"
INPUT_TENSOR = "inputdata"
LABELS_TENSOR = "inference"
SIGNATURE = "serving_default"
SIGNATURE_INPUT = "inputdata"
SIGNATURE_LABELS = "labels"
SIGNATURE_PROBABILITIES = "probabilities"

IMAGE_SIDE = 28
N_INPUT = IMAGE_SIDE * IMAGE_SIDE
N_CLASSES = 10

SAVED_MODEL_FILE = "saved_model.pb"
METRICS_FILE = "metrics.json"


def versions(model_dir: str | Path) -> list[int]:
    """The complete model versions under ``model_dir``, oldest first."""
    root = Path(model_dir)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        if entry.name.isdigit() and (entry / SAVED_MODEL_FILE).is_file():
            found.append(int(entry.name))
    return sorted(found)


def newest_version(model_dir: str | Path) -> int | None:
    found = versions(model_dir)
    return found[-1] if found else None


def version_dir(model_dir: str | Path, version: int) -> Path:
    return Path(model_dir) / str(version)
