"""Data sets to score: their size, their images' names, and the upload of any range of them.

An array (or a ``.npy`` / IDX file, gzipped or not) is sent as pixels, its images named
``<file>#<index>``. A directory is searched recursively for image files, sent as they are (the API
decodes them) and named by their path under it, in sorted order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from inferq.client import uploads

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"})


class Dataset(Protocol):
    def __len__(self) -> int: ...
    def names(self, start: int, stop: int) -> list[str]: ...
    def items(self, start: int, stop: int) -> list[uploads.Item]: ...
    def identity(self) -> dict:
        """What a resumed run checks it is reading the same data as before."""
        ...


class ArrayDataset:
    def __init__(self, pixels: np.ndarray, name: str = "array", source: Path | None = None) -> None:
        self.pixels = uploads.as_pixels(pixels, name)
        self.name = name
        self.source = source

    def __len__(self) -> int:
        return len(self.pixels)

    def names(self, start: int, stop: int) -> list[str]:
        return [f"{self.name}#{i}" for i in range(start, stop)]

    def items(self, start: int, stop: int) -> list[uploads.Item]:
        return [uploads.Pixels(self.name, self.pixels[start:stop], start)]

    def identity(self) -> dict:
        found: dict = {"kind": "array", "images": len(self)}
        if self.source is not None:
            stat = self.source.stat()
            found.update(path=str(self.source.resolve()), bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)
        else:  # an array in memory has only its content to be known by
            found.update(sha256=hashlib.sha256(np.ascontiguousarray(self.pixels)).hexdigest())
        return found


class FileDataset:
    def __init__(self, files: Sequence[Path], root: Path | None = None) -> None:
        self.files = list(files)
        self.root = root

    @classmethod
    def from_directory(cls, root: Path) -> FileDataset:
        files = sorted(path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
        if not files:
            raise ValueError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or below")
        return cls(files, root)

    def __len__(self) -> int:
        return len(self.files)

    def names(self, start: int, stop: int) -> list[str]:
        if self.root is None:
            return [path.name for path in self.files[start:stop]]
        return [path.relative_to(self.root).as_posix() for path in self.files[start:stop]]

    def items(self, start: int, stop: int) -> list[uploads.Item]:
        return [uploads.ImageFile(name, path.read_bytes())
                for name, path in zip(self.names(start, stop), self.files[start:stop], strict=True)]

    def identity(self) -> dict:
        listing = hashlib.sha256("\n".join(self.names(0, len(self))).encode()).hexdigest()
        return {"kind": "files", "root": str(self.root.resolve()) if self.root else None, "images": len(self),
                "names_sha256": listing}


def open_dataset(source: object) -> Dataset:
    """A data set from an array, a path (bulk file or directory), a list of image paths, or a Dataset."""
    if isinstance(source, np.ndarray):
        return ArrayDataset(source)
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            return FileDataset.from_directory(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such file or directory")
        pixels = uploads.read_bulk(path.read_bytes(), path.name)
        if pixels is None:
            raise ValueError(f"{path}: neither a .npy file nor an IDX file of images (gzipped or not), "
                             f"nor a directory of images")
        return ArrayDataset(pixels, path.name, path)
    if isinstance(source, list | tuple) and all(isinstance(entry, str | Path) for entry in source):
        return FileDataset([Path(entry) for entry in source])
    if all(hasattr(source, attribute) for attribute in ("names", "items", "identity", "__len__")):
        return source  # type: ignore[return-value]
    raise TypeError(f"cannot score a {type(source).__name__}: give an array, a path or a list of image paths")
