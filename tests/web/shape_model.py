"""A SavedModel whose answer for a drawn stroke is known: a vertical stroke is a 1, a horizontal one a 7.

The API scales a digit's ink to fill 20 of 28 pixels, so a vertical stroke reaches the top and
bottom bands of the image and a horizontal one the left and right bands. The model is linear:
each label's logit is the ink in its bands. :func:`expected_label` computes the same in numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inferq.mnist_contract import IMAGE_SIDE, N_CLASSES, N_INPUT
from tests.support.models import save_contract_model

VERTICAL = 1
HORIZONTAL = 7
#: Rows (for a vertical stroke) or columns (horizontal) this far from the edge are its band.
BAND = 8
#: Logits per band pixel of full ink: soft enough that the other bars show.
SCALE = 0.25


def weights() -> np.ndarray:
    """``[784, 10]``: for raw 0..255 pixels, the logit of each label per unit of ink."""
    index = np.arange(IMAGE_SIDE)
    edge = (index < BAND) | (index >= IMAGE_SIDE - BAND)
    w = np.zeros((IMAGE_SIDE, IMAGE_SIDE, N_CLASSES), np.float32)
    w[edge, :, VERTICAL] = SCALE / 255
    w[:, edge, HORIZONTAL] = SCALE / 255
    return w.reshape(N_INPUT, N_CLASSES)


def expected_label(pixels: np.ndarray) -> int:
    """The model's answer for one 28x28 image as the API decodes it."""
    return int(np.argmax(pixels.reshape(N_INPUT).astype(np.float32) @ weights()))


def build_shape_model(model_dir: Path, version: int) -> Path:
    """``<model_dir>/<version>`` in the contract's shape (tag, tensor names, signature), written atomically."""
    import tensorflow as tf

    return save_contract_model(model_dir, version, lambda pixels: tf.matmul(pixels, tf.constant(weights())))
