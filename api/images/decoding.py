"""Uploaded image files to what the model reads: 28x28 8-bit grayscale, white digit on black.

A 28x28 grayscale image (the mnist_png files) passes through unchanged. Anything else is made to
look like an MNIST digit: transparency composited on black (or, for dark ink on a transparent
background, the opacity taken as the ink), a light background inverted, the digit cropped to its
ink, scaled to fit 20x20 and centred by its centre of mass in 28x28, as MNIST was made.

Pillow reads PNG, JPEG, GIF (the first frame), BMP and WebP; the header is read and the size
checked against the pixel limit before anything is decompressed.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from api.images.errors import ImageError, TooManyPixels, UnsupportedImageType
from inferq.mnist_contract import IMAGE_SIDE

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
#: MNIST fits each digit in a 20x20 box inside the 28x28 image.
DIGIT_BOX = 20
#: Pixels at or below this (of 255) are background when finding a digit's extent.
INK_THRESHOLD = 32


def decode(data: bytes, *, max_pixels: int) -> np.ndarray:
    """A ``(28, 28)`` uint8 array, or an :class:`ImageError` saying what is wrong with ``data``."""
    image = open_image(data, max_pixels)
    try:
        if image.mode == "L" and image.size == (IMAGE_SIDE, IMAGE_SIDE):
            return np.asarray(image, dtype=np.uint8)
        return _like_mnist(_grayscale(image))
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"the image is corrupt or truncated: {exc}") from None


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """``data`` opened lazily (pixels not yet decompressed), its size checked against ``max_pixels``;
    shared with ``api.images.preprocessing`` so that every decoder refuses the same files the same way."""
    if not data:
        raise ImageError("the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooManyPixels(f"the image has more than {max_pixels} pixels") from None
    except UnidentifiedImageError:
        raise _unreadable(data) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"the image is corrupt: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise TooManyPixels(f"the image is {width}x{height}, more than {max_pixels} pixels")
    if width == 0 or height == 0:
        raise ImageError(f"the image is {width}x{height}")
    return image


def _unreadable(data: bytes) -> ImageError:
    """An image of a type we do not take, or not an image at all."""
    try:
        kind = Image.open(io.BytesIO(data)).format
    except Exception:  # any failure here only means "not an image Pillow knows"
        kind = None
    if kind:
        return UnsupportedImageType(f"{kind} images are not supported; send {', '.join(FORMATS)}")
    return ImageError(f"the upload is not an image ({', '.join(FORMATS)})")


def _grayscale(image: Image.Image) -> np.ndarray:
    """Float intensities 0..255, white on black, as a 2-D array."""
    if image.mode in HIGH_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        low, high = values.min(), values.max()
        stretched = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return _white_on_black(stretched)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        return _composited(image)
    return _white_on_black(np.asarray(image.convert("L"), dtype=np.float64))


#: Pillow modes of more than 8 bits a channel, stretched to 0..255 rather than truncated.
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _composited(image: Image.Image) -> np.ndarray:
    """Transparency composited on black; but dark ink on a transparent background would vanish
    there, so for it the opacity is the ink."""
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255.0
    luminance = np.asarray(rgba.convert("L"), dtype=np.float64)
    if np.median(_border(alpha)) >= 0.5:
        return _white_on_black(luminance * alpha)
    opaque = alpha >= 0.5
    if opaque.any() and luminance[opaque].mean() < 128:
        return alpha * 255.0
    return luminance * alpha


def _white_on_black(gray: np.ndarray) -> np.ndarray:
    return 255.0 - gray if np.median(_border(gray)) > 127 else gray


def _border(values: np.ndarray) -> np.ndarray:
    return np.concatenate([values[0, :], values[-1, :], values[:, 0], values[:, -1]])


def _like_mnist(gray: np.ndarray) -> np.ndarray:
    ink = gray > INK_THRESHOLD
    if not ink.any():
        return np.zeros((IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    digit = gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    height, width = digit.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    fitted = Image.fromarray(np.clip(digit, 0, 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS)
    box = np.asarray(fitted, dtype=np.float64)

    # Place the box so its centre of mass lands on the image centre, as MNIST did.
    total = box.sum()
    centre_y = (box.sum(axis=1) * np.arange(box.shape[0])).sum() / total
    centre_x = (box.sum(axis=0) * np.arange(box.shape[1])).sum() / total
    top = int(np.clip(round(IMAGE_SIDE / 2 - 0.5 - centre_y), 0, IMAGE_SIDE - box.shape[0]))
    left = int(np.clip(round(IMAGE_SIDE / 2 - 0.5 - centre_x), 0, IMAGE_SIDE - box.shape[1]))
    canvas = np.zeros((IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    canvas[top:top + box.shape[0], left:left + box.shape[1]] = box.astype(np.uint8)
    return canvas

