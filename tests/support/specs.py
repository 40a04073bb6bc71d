"""Model specs for stand-in workers' heartbeats: what a real worker says of the MNIST models."""

from __future__ import annotations

from inferq.model_spec import ANY, ModelSpec, TensorSpec

INPUT = TensorSpec("inputdata", "float32", (ANY, 784), "inputdata:0")
LABELS = TensorSpec("labels", "int64", (ANY,), "inference:0")
PROBABILITIES = TensorSpec("probabilities", "float32", (ANY, 10), "probabilities:0")


def mnist_spec(version: int, *, name: str = "mnist") -> ModelSpec:
    """A model from inferq's trainer: a ``serving_default`` signature with labels and probabilities."""
    return ModelSpec(name, version, "serving_default", (INPUT,), (LABELS, PROBABILITIES))


def go_server_spec(version: int, *, name: str = "mnist") -> ModelSpec:
    """A model as the original Go server loaded it: no signature, labels only."""
    return ModelSpec(name, version, None, (INPUT,), (LABELS,))
