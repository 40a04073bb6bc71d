"""The IDX format MNIST is published in: a magic number giving the element type and the number of
dimensions, the dimensions, then the data. The trainer reads its data files with it, and the API
takes bulk uploads of images in it (as in ``t10k-images-idx3-ubyte``). Unsigned bytes only."""

from __future__ import annotations

import math
import struct

import numpy as np

#: Unsigned bytes in 3 dimensions (images) and in 1 (labels).
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


class IdxError(ValueError):
    """Content that is not an IDX array of the kind expected, in words for a person."""


def dimensions(content: bytes, magic: int) -> tuple[int, ...]:
    """The dimensions ``content``'s header declares, an IDX file whose magic number must be ``magic``;
    read without the data, so that a caller can refuse what a header declares before holding it."""
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    found = struct.unpack(">I", content[:4])[0] if len(content) >= 4 else None
    if found != magic:
        shown = "nothing" if found is None else f"0x{found:08x}"
        raise IdxError(f"not an IDX file of this kind (magic number {shown}, expected 0x{magic:08x})")
    if len(content) < header_size:
        raise IdxError(f"truncated IDX header ({len(content)} bytes)")
    return struct.unpack(f">{ndim}I", content[4:header_size])


def parse(content: bytes, magic: int) -> np.ndarray:
    """The uint8 array in ``content``, an IDX file whose magic number must be ``magic``."""
    dims = dimensions(content, magic)
    header_size = 4 + 4 * len(dims)
    if len(content) - header_size != math.prod(dims):
        raise IdxError(f"holds {len(content) - header_size} bytes of data, its header announces "
                       f"{math.prod(dims)} ({'x'.join(map(str, dims))}): truncated or corrupt")
    # A view of the bytes: nothing is allocated for what the header declares.
    return np.frombuffer(content, np.uint8, offset=header_size).reshape(dims)
