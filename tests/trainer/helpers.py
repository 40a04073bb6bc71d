"""Where the repository and the real MNIST files are, and small IDX files made on the spot."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MNIST_DIR = Path(os.environ.get("TEST_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, magic: int, array: np.ndarray) -> Path:
    """An IDX file, gzipped when ``path`` ends in .gz."""
    payload = idx_bytes(magic, array)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path
