"""Model specs for stand-in workers' heartbeats and the catalog: what a real worker says of the MNIST models."""

from __future__ import annotations

from inferq.catalog import ModelCatalog
from inferq.model_spec import ANY, ModelSpec, TensorSpec
from inferq.redis_connection import connect

INPUT = TensorSpec("inputdata", "float32", (ANY, 784), "inputdata:0")
LABELS = TensorSpec("labels", "int64", (ANY,), "inference:0")
PROBABILITIES = TensorSpec("probabilities", "float32", (ANY, 10), "probabilities:0")


def mnist_spec(version: int, *, name: str = "mnist") -> ModelSpec:
    """A model from inferq's trainer: a ``serving_default`` signature with labels and probabilities."""
    return ModelSpec(name, version, "serving_default", (INPUT,), (LABELS, PROBABILITIES))


def go_server_spec(version: int, *, name: str = "mnist") -> ModelSpec:
    """A model as the original Go server loaded it: no signature, labels only."""
    return ModelSpec(name, version, None, (INPUT,), (LABELS,))


def publish(redis_url: str, *specs: ModelSpec, sentinel_master: str | None = None) -> None:
    """Write ``specs`` to the catalog (``inferq.catalog``), as a worker that ran before would have.

    The API admits work only for a model some worker has described: the default model is a 503
    until one has. A test that queues work before any worker has ever run on its Redis (a backlog
    a worker then drains, a worker started on demand) publishes the model first, as a deployment's
    earlier workers would have: the catalog outlives them.
    """
    ModelCatalog(connect(redis_url, sentinel_master=sentinel_master)).publish(list(specs))
