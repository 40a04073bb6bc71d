"""A trained Keras network re-expressed as TF1 graph ops, for the seed-style SavedModel ``trainer.export`` writes.

Keras 3 cannot build its layers into a TF1 graph, and the seed's clients need one (a ``model`` tag,
tensors looked up by name). So each layer of a chain is written again here with the plain TF op
that computes it at inference, its weights as variables. Only the layers the trainer's and the
benchmark's networks use are known; any other is refused rather than guessed at.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

#: (layer, weight name, Keras weight) -> the graph's variable holding its trained value.
_MakeVariable = Callable[[keras.layers.Layer, str, keras.Variable], tf.Variable]


@dataclasses.dataclass
class Network:
    """The graph of a network: its logits, and the variables with the values to initialise them to."""

    logits: tf.Tensor
    variables: list[tf.Variable]
    #: initial_value tensor -> trained value. Feeding the trained values to the initialisers keeps
    #: them out of the graph (saved once, in variables/) and adds no assign ops to it.
    feed: dict[tf.Tensor, np.ndarray]


def weight_values(model: keras.Model) -> dict[str, np.ndarray]:
    """``model``'s weights by path; read eagerly, before a TF1 graph is entered, where Keras cannot read them."""
    return {weight.path: np.asarray(weight.numpy(), dtype=np.float32) for weight in model.weights}


def build_network(model: keras.Model, weights: dict[str, np.ndarray], pixels: tf.Tensor) -> Network:
    """``model``'s layers applied in order to ``pixels`` (a tensor of the current default graph), with the
    ``weights`` that ``weight_values`` read from it."""
    variables: list[tf.Variable] = []
    feed: dict[tf.Tensor, np.ndarray] = {}

    def variable(layer: keras.layers.Layer, name: str, value: keras.Variable) -> tf.Variable:
        trained = weights[value.path]
        created = tf.compat.v1.get_variable(
            f"{layer.name}/{name}", trained.shape, tf.float32, tf.compat.v1.zeros_initializer()
        )
        variables.append(created)
        feed[created.initial_value] = trained
        return created

    outputs = pixels
    for layer in model.layers:
        with tf.name_scope(layer.name):  # the graph's ops named as the layers they came from
            outputs = _apply(layer, outputs, variable)
    return Network(outputs, variables, feed)


def _apply(layer: keras.layers.Layer, inputs: tf.Tensor, variable: _MakeVariable) -> tf.Tensor:
    if isinstance(layer, keras.layers.InputLayer | keras.layers.Dropout | keras.layers.RandomTranslation):
        return inputs  # dropout and augmentation only act in training
    if isinstance(layer, keras.layers.Rescaling):
        return inputs * float(layer.scale) + float(layer.offset)
    if isinstance(layer, keras.layers.Reshape):
        return tf.reshape(inputs, [-1, *layer.target_shape])
    if isinstance(layer, keras.layers.Flatten):
        return tf.reshape(inputs, [-1, math.prod(inputs.shape[1:])])
    if isinstance(layer, keras.layers.Dense):
        outputs = tf.matmul(inputs, variable(layer, "kernel", layer.kernel))
        return _activate(layer, outputs + variable(layer, "bias", layer.bias) if layer.use_bias else outputs)
    if isinstance(layer, keras.layers.Conv2D):
        _require(layer, layer.data_format == "channels_last" and layer.groups == 1, "channels_last, one group")
        outputs = tf.nn.conv2d(
            inputs, variable(layer, "kernel", layer.kernel), strides=[1, *layer.strides, 1],
            padding=layer.padding.upper(), dilations=[1, *layer.dilation_rate, 1],
        )
        return _activate(layer, outputs + variable(layer, "bias", layer.bias) if layer.use_bias else outputs)
    if isinstance(layer, keras.layers.MaxPooling2D):
        _require(layer, layer.data_format == "channels_last", "channels_last")
        return tf.nn.max_pool2d(
            inputs, ksize=layer.pool_size, strides=layer.strides, padding=layer.padding.upper()
        )
    raise ValueError(f"cannot export layer {layer.name!r}: {type(layer).__name__} is not one trainer.tf1_ops knows")


def _activate(layer: keras.layers.Layer, outputs: tf.Tensor) -> tf.Tensor:
    name = keras.activations.serialize(layer.activation)  # "relu", "linear"; a dict for custom ones
    if name == "linear":
        return outputs
    if name == "relu":
        return tf.nn.relu(outputs)
    raise ValueError(f"cannot export layer {layer.name!r}: activation {name!r} (only relu and linear)")


def _require(layer: keras.layers.Layer, condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(f"cannot export layer {layer.name!r}: only {what} is supported")
