"""The networks the trainer builds, one per ``arch``: each takes raw 0..255 pixels ``[None, 784]`` (the
serving contract's input) and ends in logits (softmax is applied by the loss and the export).

Only layers that ``trainer.tf1_ops`` can re-express in the exported graph are used.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from inferq import mnist_contract
from trainer.params import TrainParams

#: The CNN's widths, as Keras' MNIST convnet example has them; fixed, as the seed's MLP widths were
#: before n_hidden_* made them parameters.
CNN_FILTERS = (32, 64)
CNN_DENSE = 128
CNN_DROPOUT = 0.5


def build(params: TrainParams) -> keras.Model:
    return BUILDERS[params.arch](params)


def describe(params: TrainParams) -> str:
    """The network in one line, for the training log and metrics.json."""
    if params.arch == "cnn":
        return f"conv{CNN_FILTERS[0]}-conv{CNN_FILTERS[1]}-maxpool-dense{CNN_DENSE}-dropout-{params.n_classes}"
    return f"{params.n_input}-{params.n_hidden_1}-{params.n_hidden_2}-{params.n_classes}"


def build_mlp(params: TrainParams) -> keras.Model:
    """The seed's multilayer perceptron, the /255 scaling inside."""
    return keras.Sequential(
        [
            keras.Input(shape=(params.n_input,), name="pixels"),
            keras.layers.Rescaling(1.0 / 255.0, name="scale"),
            keras.layers.Dense(params.n_hidden_1, activation="relu", name="hidden_1"),
            keras.layers.Dense(params.n_hidden_2, activation="relu", name="hidden_2"),
            keras.layers.Dense(params.n_classes, name="logits"),
        ],
        name="mnist_mlp",
    )


def build_cnn(params: TrainParams) -> keras.Model:
    """Keras' MNIST convnet (two 3x3 convolutions, one 2x2 max pool, a dense layer, dropout) without its
    dropout after the pool, which slows learning more than a few epochs on a CPU can afford."""
    side = mnist_contract.IMAGE_SIDE
    return keras.Sequential(
        [
            keras.Input(shape=(params.n_input,), name="pixels"),
            keras.layers.Rescaling(1.0 / 255.0, name="scale"),
            # The contract feeds flat rows; the convolutions need the image back.
            keras.layers.Reshape((side, side, 1), name="image"),
            # Digits shifted by up to 2 pixels, in training only: without it the CNN overfits
            # before it reaches 99.2% on the test set.
            keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant", name="shift"),
            keras.layers.Conv2D(CNN_FILTERS[0], 3, activation="relu", name="conv_1"),
            keras.layers.Conv2D(CNN_FILTERS[1], 3, activation="relu", name="conv_2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(CNN_DENSE, activation="relu", name="dense"),
            keras.layers.Dropout(CNN_DROPOUT, name="dropout"),
            keras.layers.Dense(params.n_classes, name="logits"),
        ],
        name="mnist_cnn",
    )


#: One per ``params.ARCHS``.
BUILDERS: dict[str, Callable[[TrainParams], keras.Model]] = {"mlp": build_mlp, "cnn": build_cnn}
