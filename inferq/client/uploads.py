"""Images as a program has them, made into the multipart upload the API reads.

Pixels (a uint8 array ``[N, 28, 28]``, ``[N, 784]`` or one ``[28, 28]``, or a bulk file: ``.npy``,
IDX, gzipped IDX) travel as one ``.npy`` file in the ``images`` field: nothing is encoded per image
on either side. An image file (a path, or its bytes) and a PIL image travel in ``image`` fields,
to be decoded by the API as MNIST was made.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from numpy.lib.format import MAGIC_PREFIX as NPY_PREFIX
from PIL import Image

from inferq import idx
from inferq.mnist_contract import IMAGE_SIDE, N_INPUT

GZIP_PREFIX = b"\x1f\x8b"


@dataclasses.dataclass(frozen=True)
class Pixels:
    """Images ``[n, 784]``, named ``<name>#<offset + i>``."""

    name: str
    array: np.ndarray
    offset: int = 0

    @property
    def count(self) -> int:
        return len(self.array)

    def names(self) -> list[str]:
        return [f"{self.name}#{self.offset + i}" for i in range(self.count)]


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """One encoded image (PNG, JPEG, ...)."""

    name: str
    data: bytes
    count = 1

    def names(self) -> list[str]:
        return [self.name]


Item = Pixels | ImageFile


def as_pixels(array: np.ndarray, what: str = "images") -> np.ndarray:
    """``array`` as uint8 ``[N, 784]``, or a ValueError that says what shape or type was expected."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"{what}: pixels must be uint8 (0..255, white digit on black), not {array.dtype}")
    if array.shape == (IMAGE_SIDE, IMAGE_SIDE):
        return array.reshape(1, N_INPUT)
    if array.ndim == 3 and array.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE):
        return array.reshape(-1, N_INPUT)
    if array.ndim == 2 and array.shape[1] == N_INPUT:
        return array
    raise ValueError(f"{what}: shape {list(array.shape)}, expected [N, 28, 28], [N, 784] or [28, 28]")


def read_bulk(data: bytes, what: str) -> np.ndarray | None:
    """The images of a bulk file (``.npy``, IDX, gzipped or not) as ``[N, 784]``; None for anything else."""
    if data.startswith(GZIP_PREFIX):
        data = gzip.decompress(data)
    if data.startswith(NPY_PREFIX):
        return as_pixels(np.load(io.BytesIO(data), allow_pickle=False), what)
    if data[:4] == idx.IMAGES_MAGIC.to_bytes(4, "big"):
        try:
            return as_pixels(idx.parse(data, idx.IMAGES_MAGIC), what)
        except idx.IdxError as exc:
            raise ValueError(f"{what}: {exc}") from None
    return None


def items(images: object) -> list[Item]:
    """Whatever the client was given, one item per image file and one per array or bulk file."""
    if isinstance(images, str | Path | bytes | bytearray | np.ndarray | Image.Image):
        images = [images]
    listed = list(images)  # type: ignore[call-overload]
    return [_item(image, position, len(listed) == 1) for position, image in enumerate(listed)]


def _item(image: object, position: int, alone: bool) -> Item:
    if isinstance(image, np.ndarray):
        return Pixels("array" if alone else f"array-{position}", as_pixels(image, f"array {position}"))
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return ImageFile(f"image-{position}.png", buffer.getvalue())
    if isinstance(image, str | Path):
        path = Path(image)
        data, name = path.read_bytes(), path.name
    elif isinstance(image, bytes | bytearray):
        data, name = bytes(image), f"image-{position}"
    else:
        raise TypeError(f"image {position}: a path, bytes, a PIL image or a numpy array, not {type(image).__name__}")
    pixels = read_bulk(data, name)
    return ImageFile(name, data) if pixels is None else Pixels(name, pixels)


def batches(found: Iterable[Item], limit: int) -> Iterator[list[Item]]:
    """The items in requests of at most ``limit`` images, arrays split where they must be.

    Image files and pixels never share a request: the API answers a request's ``images`` fields
    and its ``image`` fields each in order, but not interleaved as they were sent.
    """
    batch: list[Item] = []
    room = limit
    for item in found:
        if isinstance(item, ImageFile):
            pieces: list[Item] = [item]
        else:
            pieces = [Pixels(item.name, item.array[i:i + limit], item.offset + i)
                      for i in range(0, item.count, limit)]
        if batch and type(batch[-1]) is not type(item):
            yield batch
            batch, room = [], limit
        for piece in pieces:
            if piece.count > room:
                if isinstance(piece, Pixels) and room:
                    batch.append(Pixels(piece.name, piece.array[:room], piece.offset))
                    piece = Pixels(piece.name, piece.array[room:], piece.offset + room)
                yield batch
                batch, room = [], limit
            batch.append(piece)
            room -= piece.count
    if batch:
        yield batch


def multipart(batch: list[Item]) -> tuple[bytes, str]:
    """The request body and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = []
    for item in batch:
        if isinstance(item, Pixels):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(item.array), allow_pickle=False)
            filename = item.name if item.name.endswith(".npy") else f"{item.name}.npy"
            field, data = "images", buffer.getvalue()
        else:
            field, filename, data = "image", item.name, item.data
        # A filename is echoed back, never trusted: keep the header it sits in well formed.
        safe = filename.replace('"', "%22").replace("\r", " ").replace("\n", " ")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{safe}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
