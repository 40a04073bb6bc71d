"""Bulk uploads: many images in one file, as MNIST ships them (IDX) or as NumPy saves them (.npy).

Each holds 8-bit pixels already at the model's size (``api.images.inputs``): an IDX file of
unsigned bytes shaped ``[N, H, W]`` (MNIST's ``t10k-images-idx3-ubyte`` for a 28x28 model) or a
``.npy`` of uint8 shaped ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, H*W*C]``, N at least 1. Nothing is
decoded per image, so a client with thousands of images sends them for a fraction of the cost of as
many PNG files, on both sides.

A file's header declares its shape, and nothing is allocated for it: the shape is checked against
the request's limit on images and against the bytes that follow, and the pixels are then a view of
the upload's own bytes. (``np.load`` allocates the declared array before it reads, so a 1 KB file
declaring 2^40 images would be a MemoryError.)
"""

from __future__ import annotations

import io
import math

import numpy as np
from numpy.lib.format import MAGIC_PREFIX as NPY_PREFIX

from api.images.errors import ImageError, TooManyPixels
from api.images.inputs import ImageInput
from inferq import idx

#: numpy's own bound on a header it reads without allow_pickle.
MAX_NPY_HEADER = 10_000


def decode_array(data: bytes, geometry: ImageInput, max_images: int) -> np.ndarray:
    """The images in ``data`` as uint8 ``[N, H, W, C]``, 1 <= N <= ``max_images``, or an
    :class:`ImageError` saying what is wrong."""
    if data.startswith(NPY_PREFIX):
        shape, fortran_order, offset = _npy_header(data)
    else:
        try:
            shape, fortran_order, offset = idx.dimensions(data, idx.IMAGES_MAGIC), False, 4 + 4 * 3
        except idx.IdxError as exc:
            raise ImageError(f"neither a .npy file nor an IDX file of images: {exc}") from None
    height, width, channels = geometry.height, geometry.width, geometry.channels
    shapes = {(height * width * channels,), (height, width, channels)}
    if channels == 1:
        shapes.add((height, width))
    if len(shape) < 2 or shape[1:] not in shapes:
        expected = " or ".join(f"[N, {', '.join(map(str, item))}]" for item in sorted(shapes, key=len))
        raise ImageError(f"images of shape {list(shape)}: expected {expected}")
    if shape[0] == 0:
        raise ImageError(f"holds no images (shape {list(shape)}): send at least one")
    if shape[0] > max_images:
        raise TooManyPixels(f"declares {shape[0]} images, more than the {max_images} allowed in one request")
    present, declared = len(data) - offset, math.prod(shape)
    if present != declared:
        raise ImageError(f"its header declares {'x'.join(map(str, shape))} uint8 pixels ({declared} bytes), but "
                         f"{present} bytes follow it: truncated or corrupt")
    array = np.frombuffer(data, np.uint8, count=declared, offset=offset).reshape(
        shape, order="F" if fortran_order else "C")
    return np.ascontiguousarray(array).reshape(-1, height, width, channels)


def _npy_header(data: bytes) -> tuple[tuple[int, ...], bool, int]:
    """A .npy file's shape, order and where its data starts, from numpy's public header readers."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=MAX_NPY_HEADER)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream, max_header_size=MAX_NPY_HEADER)
        else:  # 3.0 exists for field names beyond latin-1, which a uint8 array has none of
            raise ValueError(f".npy format version {version[0]}.{version[1]}; np.save writes 1.0 for uint8")
    except (ValueError, OSError, EOFError) as exc:
        raise ImageError(f"not a readable .npy file: {exc}") from None
    if dtype != np.uint8:
        raise ImageError(f"a .npy of images must hold uint8 pixels, not {dtype}")
    return tuple(shape), fortran_order, stream.tell()
