"""Bulk uploads: many images in one file, as MNIST ships them (IDX) or as NumPy saves them (.npy).

Each holds 8-bit pixels already at the model's size (``inferq.image_inputs``): an IDX file of
unsigned bytes shaped ``[N, H, W]`` (MNIST's ``t10k-images-idx3-ubyte`` for a 28x28 model) or a
``.npy`` of uint8 shaped ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, H*W*C]``. Nothing is decoded per
image, so a client with thousands of images sends them for a fraction of the cost of as many PNG
files, on both sides.
"""

from __future__ import annotations

import io

import numpy as np

from api.image_errors import ImageError
from inferq import idx
from inferq.image_inputs import ImageInput

NPY_PREFIX = b"\x93NUMPY"


def decode_array(data: bytes, geometry: ImageInput) -> np.ndarray:
    """The images in ``data`` as uint8 ``[N, H, W, C]``, or an :class:`ImageError` saying what is wrong."""
    if data.startswith(NPY_PREFIX):
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ImageError(f"not a readable .npy file: {exc}") from None
        if array.dtype != np.uint8:
            raise ImageError(f"a .npy of images must hold uint8 pixels, not {array.dtype}")
    else:
        try:
            array = idx.parse(data, idx.IMAGES_MAGIC)
        except idx.IdxError as exc:
            raise ImageError(f"neither a .npy file nor an IDX file of images: {exc}") from None
    height, width, channels = geometry.height, geometry.width, geometry.channels
    shapes = {(height * width * channels,), (height, width, channels)}
    if channels == 1:
        shapes.add((height, width))
    if array.ndim < 2 or array.shape[1:] not in shapes:
        expected = " or ".join(f"[N, {', '.join(map(str, shape))}]" for shape in sorted(shapes, key=len))
        raise ImageError(f"images of shape {list(array.shape)}: expected {expected}")
    return np.ascontiguousarray(array).reshape(-1, height, width, channels)
