"""Bulk uploads: many images in one file, as MNIST ships them (IDX) or as NumPy saves them (.npy).

Each is 28x28 8-bit grayscale, white on black, as the model reads it: an IDX file of unsigned bytes
shaped ``[N, 28, 28]`` (``t10k-images-idx3-ubyte``) or a ``.npy`` of uint8 shaped ``[N, 28, 28]`` or
``[N, 784]``. Nothing is decoded per image, so a client with thousands of digits sends them for a
fraction of the cost of as many PNG files, on both sides.
"""

from __future__ import annotations

import io

import numpy as np

from api.image_errors import ImageError
from inferq import idx
from inferq.model_contract import IMAGE_SIDE, N_INPUT

NPY_PREFIX = b"\x93NUMPY"


def decode_array(data: bytes) -> np.ndarray:
    """The images in ``data`` as uint8 ``[N, 784]``, or an :class:`ImageError` saying what is wrong."""
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
    if array.ndim == 2 and array.shape[1] == N_INPUT:
        return np.ascontiguousarray(array)
    if array.ndim == 3 and array.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE):
        return np.ascontiguousarray(array).reshape(-1, N_INPUT)
    raise ImageError(f"images of shape {list(array.shape)}: expected [N, 28, 28] or [N, 784]")
