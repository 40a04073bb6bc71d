"""Writing a trained network as a SavedModel that the seed's Go server could load, and loading it back that way.

The graph is built with the TF1 API because the seed's clients look tensors up by name in a meta graph
tagged exactly ``model``: placeholder ``inputdata`` (raw 0..255 pixels) -> ``inference`` (int64
labels). A ``serving_default`` signature (``probabilities``, ``labels``) is added to it and to a second
meta graph tagged ``serve``, the tag TF Serving and saved_model_cli look for by default. Whatever the
network (``trainer.tf1_ops`` writes its layers), this module is where that contract is written.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from inferq import mnist_contract
from trainer import tf1_ops

SERVE_TAG = tf.saved_model.SERVING


def write_saved_model(model: keras.Model, export_dir: Path) -> None:
    """A SavedModel of ``model`` (a chain of layers from raw pixels ``[None, 784]`` to logits) in the empty
    or absent directory ``export_dir``."""
    if tuple(model.input_shape) != (None, mnist_contract.N_INPUT):
        raise ValueError(f"the model takes {model.input_shape}, not (None, {mnist_contract.N_INPUT}) raw pixels")
    weights = tf1_ops.weight_values(model)
    graph = tf.Graph()
    with _quiet_tf1_deprecations(), graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        pixels = tf.compat.v1.placeholder(
            tf.float32, [None, mnist_contract.N_INPUT], name=mnist_contract.INPUT_TENSOR
        )
        # The model's own scaling (its Rescaling layer) goes into the graph: that is what makes the
        # seed's raw-pixel clients right (the seed's graph was not).
        network = tf1_ops.build_network(model, weights, pixels)
        probabilities = tf.nn.softmax(network.logits, name=mnist_contract.SIGNATURE_PROBABILITIES)
        labels = tf.argmax(network.logits, 1, name=mnist_contract.LABELS_TENSOR, output_type=tf.int64)
        session.run([variable.initializer for variable in network.variables], feed_dict=network.feed)

        signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(
            inputs={mnist_contract.SIGNATURE_INPUT: pixels},
            outputs={mnist_contract.SIGNATURE_PROBABILITIES: probabilities, mnist_contract.SIGNATURE_LABELS: labels},
        )
        signatures = {mnist_contract.SIGNATURE: signature}
        builder = tf.compat.v1.saved_model.Builder(str(export_dir))
        # strip_default_attrs lets older TensorFlow runtimes (the Go binding's libtensorflow) load it.
        builder.add_meta_graph_and_variables(
            session, [mnist_contract.TAG], signature_def_map=signatures, strip_default_attrs=True
        )
        builder.add_meta_graph([SERVE_TAG], signature_def_map=signatures, strip_default_attrs=True)
        builder.save()


def run_go_server_style(export_dir: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Load ``export_dir`` as the seed's Go server did (tags ["model"], feed ``inputdata``, fetch
    ``inference``) and return those labels with the ``serving_default`` probabilities for ``images``."""
    graph = tf.Graph()
    with _quiet_tf1_deprecations(), graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, [mnist_contract.TAG], str(export_dir))
        signature = meta_graph.signature_def[mnist_contract.SIGNATURE]
        # One run for both fetches: a second pass over the test set costs seconds for a CNN.
        labels, probabilities = session.run(
            [f"{mnist_contract.LABELS_TENSOR}:0", signature.outputs[mnist_contract.SIGNATURE_PROBABILITIES].name],
            {f"{mnist_contract.INPUT_TENSOR}:0": images.astype(np.float32)},
        )
    return labels, probabilities


@contextlib.contextmanager
def _quiet_tf1_deprecations() -> Iterator[None]:
    """The TF1 SavedModel API is deprecated, but it is what the seed's loader reads: its warnings would
    only alarm whoever reads the training log."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
