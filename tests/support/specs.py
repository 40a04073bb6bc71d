"""Model specs for stand-in workers' heartbeats and the catalog: what a real worker says of the MNIST
models, and of models of other kinds a repository may hold."""

from __future__ import annotations

from inferq.catalog import ModelCatalog
from inferq.model_config import ModelConfig, VersionPolicy
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


# Models of a repository beside MNIST, as their workers would describe them.

CIFAR_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IRIS_LABELS = ("setosa", "versicolor", "virginica")


def image_classifier_spec(version: int, *, name: str = "cifar") -> ModelSpec:
    """An RGB image classifier: float32 images [-1, 32, 32, 3], class scores [-1, 10] named by its
    config's labels, batches of its own size and wait."""
    config = ModelConfig(max_batch_size=16, max_batch_wait_ms=2.0, version_policy=VersionPolicy(latest=2),
                         labels=CIFAR_LABELS)
    image = TensorSpec("image", "float32", (ANY, 32, 32, 3), "image:0")
    scores = TensorSpec("scores", "float32", (ANY, 10), "scores:0")
    return ModelSpec(name, version, "serving_default", (image,), (scores,), config)


def tabular_spec(version: int, *, name: str = "iris") -> ModelSpec:
    """A classifier of rows of four features (no images), its three classes named."""
    return ModelSpec(name, version, "serving_default", (TensorSpec("features", "float32", (ANY, 4), "features:0"),),
                     (TensorSpec("probabilities", "float32", (ANY, 3), "probabilities:0"),),
                     ModelConfig(labels=IRIS_LABELS))


def pair_spec(version: int, *, name: str = "pair") -> ModelSpec:
    """Two inputs of different types, and two outputs: ids int64 [-1, 3], weights float32 [-1, 3]."""
    inputs = (TensorSpec("ids", "int64", (ANY, 3), "ids:0"), TensorSpec("weights", "float32", (ANY, 3), "weights:0"))
    outputs = (TensorSpec("score", "float32", (ANY,), "score:0"), TensorSpec("rank", "int32", (ANY, 2), "rank:0"))
    return ModelSpec(name, version, "serving_default", inputs, outputs)


def text_spec(version: int, *, name: str = "sentiment") -> ModelSpec:
    """Strings in (BYTES), a string and a score out."""
    return ModelSpec(name, version, "serving_default", (TensorSpec("text", "string", (ANY,), "text:0"),),
                     (TensorSpec("verdict", "string", (ANY,), "verdict:0"),
                      TensorSpec("score", "float32", (ANY,), "score:0")))


def publish(redis_url: str, *specs: ModelSpec, sentinel_master: str | None = None) -> None:
    """Write ``specs`` to the catalog (``inferq.catalog``), as a worker that ran before would have.

    The API admits work only for a model some worker has described: the default model is a 503
    until one has. A test that queues work before any worker has ever run on its Redis (a backlog
    a worker then drains, a worker started on demand) publishes the model first, as a deployment's
    earlier workers would have: the catalog outlives them.
    """
    ModelCatalog(connect(redis_url, sentinel_master=sentinel_master)).publish(list(specs))
