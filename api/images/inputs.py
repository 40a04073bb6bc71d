"""Which input of a model an uploaded image feeds, and how its pixels become that input's values.

A model takes images when it has one numeric input shaped ``[-1, H, W]``, ``[-1, H, W, C]`` (C 1 or
3) or flat ``[-1, H*W*C]``. A flat input is only read as an image when it is MNIST's ``[-1, 784]``
(28x28x1) or when ``config.json`` says it takes images: then it is square, of ``image.channels``
(else 1) channels. Which pixels to make comes from ``config.json``'s ``image``; without one, a
28x28 grayscale input gets MNIST's own preprocessing (so the MNIST model needs no config) and any
other the standard steps at 0..255. Decoding is the API's (``api.images.preprocessing``); this module
is NumPy only, so that the API and the worker agree on it without either importing the other.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from inferq.dtypes import FLOATS
from inferq.model_config import ImageConfig
from inferq.model_spec import ANY, ModelSpec, TensorSpec

#: Integer types that hold pixels 0..255 (int8 does not).
INTEGERS = ("uint8", "uint16", "uint32", "uint64", "int16", "int32", "int64")
MNIST_SIDE = 28


class ImageInputError(ValueError):
    """A model whose config.json and input disagree on how it takes images (the API answers 400)."""


@dataclasses.dataclass(frozen=True)
class ImageInput:
    """The input tensor an image upload feeds, and the pixels it takes: ``height`` x ``width`` x
    ``channels`` uint8, as ``config`` (with its channels always set) turns them into values."""

    tensor: TensorSpec
    height: int
    width: int
    channels: int
    #: Whether the tensor is ``[-1, H*W*C]`` rather than an image's shape.
    flat: bool
    config: ImageConfig

    def __post_init__(self) -> None:
        """No ImageInput the pixels cannot be made for: every path to the model is checked once, here."""
        name, config = self.tensor.name, self.config
        if config.channels is not None and config.channels != self.channels:
            raise ImageInputError(f"config.json's image channels is {config.channels}, but input {name!r} "
                                  f"{list(self.tensor.shape)} takes {self.channels}")
        if config.preprocessing == "mnist" and (self.height, self.width, self.channels) != (MNIST_SIDE,) * 2 + (1,):
            raise ImageInputError(f"MNIST preprocessing makes 28x28 grayscale images, but input {name!r} "
                                  f"takes {self.height}x{self.width}x{self.channels}")
        if self.tensor.dtype not in FLOATS + INTEGERS:
            raise ImageInputError(f"input {name!r} is {self.tensor.dtype}, which cannot hold pixels 0..255")
        if self.tensor.dtype in INTEGERS and config.scale != "0..255":
            raise ImageInputError(f"input {name!r} is {self.tensor.dtype}, which cannot hold pixels scaled "
                                  f"to {config.scale} (config.json's image scale); use 0..255")

    @property
    def pixels_shape(self) -> tuple[int, int, int]:
        """One decoded image: ``(height, width, channels)``."""
        return self.height, self.width, self.channels


def image_input(spec: ModelSpec) -> ImageInput | None:
    """How ``spec``'s model takes images; None when it takes none (its callers send tensors), or an
    :class:`ImageInputError` when its config.json says it takes images and its input cannot."""
    explicit = spec.config.image
    geometry = _geometry(spec, explicit)
    if geometry is None:
        if explicit is None:
            return None
        inputs = ", ".join(f"{tensor.name!r} {tensor.dtype} {list(tensor.shape)}" for tensor in spec.inputs)
        raise ImageInputError(f"model {spec.name!r}: its config.json and input disagree: config.json has an "
                              f"'image' section, but its inputs ({inputs or 'none'}) are not one image")
    tensor, height, width, channels = geometry
    if explicit is not None:
        config = dataclasses.replace(explicit, channels=explicit.channels or channels)
    elif (height, width, channels) == (MNIST_SIDE, MNIST_SIDE, 1):
        config = ImageConfig(preprocessing="mnist", channels=1)
    else:
        config = ImageConfig(channels=channels)
    try:
        return ImageInput(tensor, height, width, channels, len(tensor.shape) == 2, config)
    except ImageInputError as error:
        why = "its config.json and input disagree" if explicit is not None else "it cannot take images"
        raise ImageInputError(f"model {spec.name!r}: {why}: {error}") from None


def _geometry(spec: ModelSpec, explicit: ImageConfig | None) -> tuple[TensorSpec, int, int, int] | None:
    """The input's tensor, height, width and channels, if it is shaped as one image (batch first)."""
    if len(spec.inputs) != 1:
        return None
    tensor = spec.inputs[0]
    shape = tensor.shape
    if tensor.dtype not in (*FLOATS, *INTEGERS, "int8") or len(shape) < 2 or shape[0] != ANY or min(shape[1:]) <= 0:
        return None
    if len(shape) == 2:
        if explicit is None:
            return (tensor, MNIST_SIDE, MNIST_SIDE, 1) if shape[1] == MNIST_SIDE**2 else None
        channels = explicit.channels or 1
        side = math.isqrt(shape[1] // channels)
        return (tensor, side, side, channels) if side * side * channels == shape[1] else None
    if len(shape) == 3:
        return tensor, shape[1], shape[2], 1
    if len(shape) == 4 and shape[3] in (1, 3):
        return tensor, shape[1], shape[2], shape[3]
    return None


def to_model_values(pixels: np.ndarray, image_input: ImageInput) -> np.ndarray:
    """Decoded images (uint8 ``[N, H, W, C]``) as the input's values: inverted if the config says,
    scaled to its range and shaped as the tensor (``[N, H*W*C]`` when flat, ``[N, H, W]`` for a
    ``[-1, H, W]`` input).

    At scale 0..255 the result stays uint8 whatever the input's type: the values are exact in it,
    and this array travels through Redis to the worker, a quarter the size of float32. The job's
    message carries its dtype and the worker casts to the model's. Other scales are in the input's
    own float type (the only types :class:`ImageInput` allows them for).
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[1:] != image_input.pixels_shape:
        raise ValueError(f"expected uint8 pixels [N, {', '.join(map(str, image_input.pixels_shape))}], "
                         f"got {pixels.dtype} {list(pixels.shape)}")
    config = image_input.config
    values = 255 - pixels if config.invert else pixels
    if config.scale != "0..255":
        dtype = np.dtype(image_input.tensor.dtype)
        values = values.astype(dtype)
        if config.scale == "0..1":
            values /= dtype.type(255)
        else:
            values /= dtype.type(127.5)
            values -= dtype.type(1)
    return values.reshape((len(pixels), *image_input.tensor.shape[1:]))
