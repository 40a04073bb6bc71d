"""Images and the stand-in's answers for them, for the protocol tests."""

from __future__ import annotations

import numpy as np

from tests.support.stand_in import fake_label


def digits(count: int, random_seed: int = 0) -> np.ndarray:
    """``count`` random 28x28 uint8 images."""
    return np.random.default_rng(random_seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def stand_in_labels(images: np.ndarray) -> list[int]:
    """What the stand-in worker answers for ``images``."""
    return [fake_label(image.reshape(784)) for image in images]
