"""``python -m bench.image_resize``: the cost of bringing a photo to a classifier's input, per filter.

A 1024x768 JPEG (gradients, noise and hard-edged discs, quality 90) to 224x224 RGB, one image at a
time on one core: the numbers behind the filter and the JPEG draft decode in
``api.images.preprocessing``. Each line is the best of 5 runs of 40, in ms per image.
"""

from __future__ import annotations

import io
import timeit

import numpy as np
from PIL import Image

from api.images.inputs import ImageInput
from api.images.preprocessing import decode_for
from inferq.model_config import ImageConfig
from inferq.model_spec import ANY, TensorSpec

SIZE = (224, 224)
FILTERS = {"BILINEAR": Image.Resampling.BILINEAR, "BICUBIC": Image.Resampling.BICUBIC,
           "LANCZOS": Image.Resampling.LANCZOS}


def photo(width: int = 1024, height: int = 768) -> bytes:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / width, y * 255 / height, 128 + 60 * np.sin(x / 17) * np.cos(y / 23)], -1)
    pixels += rng.normal(0, 12, pixels.shape)
    for _ in range(40):
        cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(10, 120)
        pixels[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 255, 3)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def ms(call) -> float:
    return min(timeit.repeat(call, number=40, repeat=5)) / 40 * 1000


def main() -> None:
    data = photo()

    def opened(draft: bool) -> Image.Image:
        image = Image.open(io.BytesIO(data))
        if draft:
            image.draft("RGB", SIZE)
        return image.convert("RGB")

    print(f"decode {ms(lambda: opened(False)):.2f}  decode with draft {ms(lambda: opened(True)):.2f}")
    for name, method in FILTERS.items():
        print(f"{name:8s} decode + resize {ms(lambda m=method: opened(False).resize(SIZE, m)):6.2f}"
              f"   with draft {ms(lambda m=method: opened(True).resize(SIZE, m)):6.2f}"
              f"   reducing_gap=2 {ms(lambda m=method: opened(False).resize(SIZE, m, reducing_gap=2.0)):6.2f}")
    for channels in (3, 1):
        for resize in ("stretch", "fit", "crop"):
            target = ImageInput(TensorSpec("x", "float32", (ANY, *SIZE, channels)), *SIZE, channels, False,
                                ImageConfig(channels=channels, resize=resize))
            print(f"decode_for {resize} {channels} channel(s): "
                  f"{ms(lambda t=target: decode_for(data, t, max_pixels=1 << 24)):.2f}")


if __name__ == "__main__":
    main()
