"""The MNIST model's own contract: what inferq's trainer writes, and what the original Go server loaded.

Any other model is described by its signature alone (``inferq.model_spec``); these names and sizes
belong to the ``mnist`` model, its trainer, its preprocessing (``api.images.decoding``) and the worker's
loading of a Go server graph, which has no signature. Versions live in the repository as every
model's do (``inferq.repository``).

Graph names are those the original Go server loaded (README: where the MNIST contract comes from):
the meta graph tagged ``model``, a placeholder ``inputdata`` (float32 ``[None, 784]``, raw 0..255
pixels, white digit on black) and an op ``inference`` (int64 ``[None]`` labels). Models from our
trainer add a ``serving_default`` signature with ``probabilities`` ``[None, 10]`` and ``labels``.
No TensorFlow is imported here.
"""

from __future__ import annotations

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

METRICS_FILE = "metrics.json"
