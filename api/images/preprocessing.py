"""Uploaded image files to the pixels a model's image input takes: uint8 ``[H, W, C]``.

``mnist`` preprocessing is ``api.images.decoding``' (a white digit on black, fitted and centred as MNIST
was made), unchanged. ``standard`` is the usual classifier preprocessing (decode, convert, resize),
with the image taken as a person sees it:

- the EXIF orientation applied, so a phone's photo is upright as it is shown;
- 16-bit images brought to 8 bits (0..65535 to 0..255; Pillow's own conversion clips at 255);
- transparency composited on white, as a page shows it: dropping alpha (``convert("RGB")``) would
  show whatever colour the transparent pixels happen to hold, often black;
- converted to grayscale (ITU-R 601 luma) or RGB, then resized to the input's size by the config's
  mode: ``stretch``, ``fit`` (padded with black) or ``crop`` (the centre).

Resizing is BILINEAR, the interpolation most training pipelines default to (Keras', torchvision's);
Pillow's is antialiased when it reduces, so a large photo does not alias. JPEGs are decoded at a DCT
scale (``draft``: 1/2, 1/4 or 1/8) still at least the target's size, and for one channel only their
luma is decoded. A 1024x768 JPEG to 224x224 RGB, one core (``python -m bench.image_resize``), ms:
decode 3.7; decode and resize BILINEAR 6.8, BICUBIC 9.5, LANCZOS 12.0; with the draft decode 3.6,
4.3 and 5.3. ``decode_for``, all steps: 3.6-3.8 RGB, 2.6 grayscale. ``reducing_gap`` (a box
reduction first) gained nothing at that ratio and is not used; LANCZOS would cost half as much again
for a sharpness the models were not trained on.
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, ImageOps

from api.images import decoding as images
from api.images.errors import ImageError
from api.images.inputs import ImageInput

FILTER = Image.Resampling.BILINEAR


def decode_for(data: bytes, image_input: ImageInput, *, max_pixels: int) -> np.ndarray:
    """``data``'s pixels as ``image_input`` takes them (uint8 ``[H, W, C]``), or an
    :class:`ImageError` saying what is wrong with the file."""
    if image_input.config.preprocessing == "mnist":
        return images.decode(data, max_pixels=max_pixels)[..., np.newaxis]
    image = images.open_image(data, max_pixels)
    mode = "L" if image_input.channels == 1 else "RGB"
    try:
        # Both sides at least the target's longer one, whatever the orientation turns.
        side = max(image_input.height, image_input.width)
        image.draft(mode, (side, side))
        image = _in_mode(_upright(image), mode)
        resized = _resized(image, image_input.width, image_input.height, image_input.config.resize)
        return np.asarray(resized, dtype=np.uint8).reshape(image_input.pixels_shape)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"the image is corrupt or truncated: {exc}") from None


def _upright(image: Image.Image) -> Image.Image:
    """Turned as its EXIF orientation says; EXIF that cannot be read leaves it as it is, unwarned."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImageOps.exif_transpose(image)


def _in_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode in images.HIGH_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(values / 257), 0, 255).astype(np.uint8)).convert(mode)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert(mode)


def _resized(image: Image.Image, width: int, height: int, mode: str) -> Image.Image:
    source_width, source_height = image.size
    if mode == "crop":
        # The largest centred box of the target's aspect, read straight into the target's size.
        scale = max(width / source_width, height / source_height)
        box_width, box_height = width / scale, height / scale
        left, top = (source_width - box_width) / 2, (source_height - box_height) / 2
        return image.resize((width, height), FILTER, box=(left, top, left + box_width, top + box_height))
    if mode == "fit":
        scale = min(width / source_width, height / source_height)
        size = (max(1, min(width, round(source_width * scale))), max(1, min(height, round(source_height * scale))))
        canvas = Image.new(image.mode, (width, height), 0)
        canvas.paste(image.resize(size, FILTER), ((width - size[0]) // 2, (height - size[1]) // 2))
        return canvas
    return image.resize((width, height), FILTER)
