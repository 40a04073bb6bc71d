"""Request bodies made of real MNIST test digits, as PNG files in multipart form."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from trainer.data import load_idx_split

BOUNDARY = "inferqbenchboundary"
#: The request header of a :func:`multipart` body.
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def test_digits(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's test split: images ``[N, 28, 28]`` and labels."""
    split = load_idx_split(data_dir, "testing")
    return split.images.reshape(-1, 28, 28), split.labels


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def idx_file(images: np.ndarray) -> bytes:
    """Images ``[N, 28, 28]`` as an IDX file, MNIST's own format."""
    return struct.pack(">IIII", 0x00000803, len(images), 28, 28) + images.tobytes()


def multipart(files: Sequence[tuple[str, str, bytes]]) -> bytes:
    """A multipart body of (field, filename, content) parts, sent with :data:`MULTIPART`; every part
    is ``application/octet-stream`` (the API reads a part by its content, whatever its type says)."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
        for field, name, data in files
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def one_image_bodies(images: np.ndarray, labels: np.ndarray, count: int, out_dir: Path) -> list[Path]:
    """``count`` one-image bodies, each file named ``<index>_<label>.body`` for the wrk script."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = out_dir / f"{index}_{labels[index]}.body"
        path.write_bytes(multipart([("image", f"{index}_{labels[index]}.png", png(images[index]))]))
        paths.append(path)
    return paths
