"""Loading MNIST: the official IDX files (gzipped or not) or an mnist_png tree, checked and checksummed.

Images come back as uint8 ``[N, 784]`` raw pixels (white digit on black) and labels as uint8 ``[N]``,
in the order of the source. Any file that is truncated, corrupt, of the wrong shape or (for the
official files) not the official content is a TrainerError naming it. TensorFlow is not imported.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from inferq import idx, mnist_contract
from trainer import download, mnist_files
from trainer.errors import TrainerError

SIDE = mnist_contract.IMAGE_SIDE
PNG_LAYOUT = "an mnist_png tree holds training/<label>/*.png and testing/<label>/*.png"


@dataclasses.dataclass(frozen=True)
class Split:
    """One split: images uint8 [N, 784], labels uint8 [N], and sha256 of what it was read from."""

    images: np.ndarray
    labels: np.ndarray
    #: file name -> sha256 of its decompressed content (for a PNG tree: of its decoded pixels and labels).
    checksums: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Mnist:
    training: Split
    testing: Split
    #: Said to a person and recorded in metrics.json: which files these are.
    source: str


def load_mnist(data_dir: str | Path, *, download_missing: bool = True) -> Mnist:
    """Both splits from ``data_dir``: its IDX files, else its mnist_png tree, else IDX files fetched
    into it (when ``download_missing``)."""
    root = Path(data_dir)
    if _is_png_tree(root) and not any(find_idx_file(root, name) for name in mnist_files.ALL_FILES):
        return Mnist(load_png_split(root, "training"), load_png_split(root, "testing"), f"mnist_png tree {root}")
    return Mnist(
        load_idx_split(root, "training", download_missing=download_missing),
        load_idx_split(root, "testing", download_missing=download_missing),
        f"IDX files in {root}",
    )


def load_idx_split(data_dir: str | Path, split: str, *, download_missing: bool = False) -> Split:
    """The ``split`` ("training" or "testing") from the official IDX files in ``data_dir``."""
    root = Path(data_dir)
    if root.exists() and not root.is_dir():
        raise TrainerError(f"MNIST data path {root} is not a directory")
    names = mnist_files.FILES[split]
    missing = [name for name in names if find_idx_file(root, name) is None]
    if missing and not download_missing:
        raise TrainerError(mnist_files.missing_files_message(root, missing, "downloading is off"))
    if missing:
        download.download_files(root, missing)
    # download_files writes name.gz; were it ever not there, read_idx would say so.
    images_path, labels_path = (find_idx_file(root, name) or root / f"{name}.gz" for name in names)
    images, images_sha = read_idx(images_path, idx.IMAGES_MAGIC)
    labels, labels_sha = read_idx(labels_path, idx.LABELS_MAGIC)
    if images.shape[1:] != (SIDE, SIDE):
        raise TrainerError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, MNIST's are {SIDE}x{SIDE}")
    if len(images) != len(labels):
        raise TrainerError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    if labels.size and labels.max() >= mnist_contract.N_CLASSES:
        raise TrainerError(f"{labels_path}: label {labels.max()} is not a digit")
    return Split(
        images.reshape(len(images), SIDE * SIDE),
        labels,
        {images_path.name: images_sha, labels_path.name: labels_sha},
    )


def find_idx_file(data_dir: Path, name: str) -> Path | None:
    """``data_dir/name.gz`` or ``data_dir/name``, whichever is there (the gzipped one first)."""
    for candidate in (data_dir / f"{name}.gz", data_dir / name):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path, magic: int) -> tuple[np.ndarray, str]:
    """The uint8 array in the IDX file ``path`` (gunzipped if it ends in .gz) and the sha256 of its
    decompressed content, which must match the official one when ``path`` has an official name."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainerError(f"cannot read {path}: {exc.strerror}") from None
    content = raw
    if path.suffix == ".gz":
        try:
            content = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise TrainerError(f"{path}: truncated or corrupt gzip file ({exc})") from None
    try:
        array = idx.parse(content, magic)
    except idx.IdxError as exc:
        raise TrainerError(f"{path}: {exc}") from None
    digest = hashlib.sha256(content).hexdigest()
    official = mnist_files.official_name(path)
    if official is not None and digest != mnist_files.SHA256[official]:
        raise TrainerError(
            f"{path}: content's sha256 is {digest}, the official {official}'s is "
            f"{mnist_files.SHA256[official]}: the file is corrupt or not the official one"
        )
    return array, digest


def load_png_split(root: str | Path, split: str) -> Split:
    """The ``split`` of an mnist_png tree: ``<root>/<split>/<label>/<index>.png``, 28x28 8-bit grayscale.

    Images are ordered by their index (the file name), so a tree written from the IDX files reads back
    in the IDX order.
    """
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise TrainerError(f"{split_dir} is not a directory ({PNG_LAYOUT})")
    found: list[tuple[float, str, int, Path]] = []
    for label_dir in sorted(split_dir.iterdir()):
        if label_dir.name.startswith("."):
            continue
        if not (label_dir.is_dir() and label_dir.name.isdigit() and int(label_dir.name) < mnist_contract.N_CLASSES):
            raise TrainerError(f"{label_dir}: not a label directory 0..9 ({PNG_LAYOUT})")
        for png in label_dir.glob("*.png"):
            index = int(png.stem) if png.stem.isdigit() else math.inf
            found.append((index, png.name, int(label_dir.name), png))
    if not found:
        raise TrainerError(f"{split_dir}: no PNG images ({PNG_LAYOUT})")
    found.sort()
    images = np.stack([_read_png(png) for *_, png in found])
    labels = np.array([label for _, _, label, _ in found], dtype=np.uint8)
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    return Split(images, labels, {f"{split}/<label>/*.png ({len(found)} files, decoded)": digest})


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            mode, size = image.mode, image.size
            pixels = np.asarray(image, dtype=np.uint8) if mode == "L" else None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise TrainerError(f"{path}: unreadable or corrupt image ({exc})") from None
    if pixels is None or size != (SIDE, SIDE):
        raise TrainerError(
            f"{path}: a {size[0]}x{size[1]} {mode} image; MNIST images are {SIDE}x{SIDE} 8-bit grayscale (L)"
        )
    return pixels.reshape(SIDE * SIDE)


def _is_png_tree(root: Path) -> bool:
    return all((root / split).is_dir() for split in mnist_files.SPLITS)
