"""Writing an MNIST split as the popular mnist_png tree, ``<out>/<split>/<label>/<index>.png``.

Each file is named by the image's index in its split, as in mnist_png, so the seed's curl example
(``-F 'image=@./mnist_png/testing/9/104.png'``) finds the 105th test image, a 9.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from trainer.data import SIDE, Split


def write_png_tree(split: Split, split_name: str, out_dir: Path) -> Path:
    """Write every image of ``split`` under ``out_dir/split_name/`` and return that directory."""
    split_dir = out_dir / split_name
    for label in sorted(set(split.labels.tolist())):
        (split_dir / str(label)).mkdir(parents=True, exist_ok=True)
    for index, (pixels, label) in enumerate(zip(split.images, split.labels, strict=True)):
        Image.fromarray(pixels.reshape(SIDE, SIDE)).save(split_dir / str(label) / f"{index}.png")
    return split_dir
