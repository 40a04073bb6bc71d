"""api.images.decoding: an uploaded file to MNIST's 28x28 white-on-black digit, and the files it refuses."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from api.images import decoding as images
from api.images.errors import ImageError, image_error_status
from tests.conftest import png_bytes

LIMIT = 4096 * 4096


def decode(data: bytes, max_pixels: int = LIMIT) -> np.ndarray:
    return images.decode(data, max_pixels=max_pixels)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    total = pixels.sum()
    rows, cols = np.indices(pixels.shape)
    return (rows * pixels).sum() / total, (cols * pixels).sum() / total


@pytest.fixture
def nine(mnist_test) -> np.ndarray:
    return mnist_test[0][104]


def large_black_on_white(digit: np.ndarray) -> Image.Image:
    """The digit drawn dark on white, 10 times as large, off-centre on a bigger sheet."""
    sheet = np.zeros((400, 330), np.uint8)
    sheet[30:310, 10:290] = np.kron(digit, np.ones((10, 10), np.uint8))
    return Image.fromarray(255 - sheet)


def test_a_28x28_grayscale_png_passes_unchanged(nine):
    assert np.array_equal(decode(png_bytes(nine)), nine)


def test_a_dark_digit_on_a_light_page_is_inverted_fitted_and_centred(nine):
    out = decode(encoded(large_black_on_white(nine).convert("RGB"), "JPEG", quality=95))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out.max() > 200 and out[0].max() == 0 and out[:, 0].max() == 0  # white ink, black border
    rows, cols = np.nonzero(out > images.INK_THRESHOLD)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= images.DIGIT_BOX + 1
    y, x = centre_of_mass(out.astype(float))
    assert abs(y - 13.5) <= 1 and abs(x - 13.5) <= 1
    # Still the same shape: close to the original MNIST digit, far from another digit.
    assert np.corrcoef(out.ravel(), nine.ravel())[0, 1] > 0.8


def test_dark_ink_on_a_transparent_background_uses_the_opacity(nine):
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = nine  # black strokes, opaque where the digit is
    assert np.corrcoef(decode(png_bytes(rgba)).ravel(), nine.ravel())[0, 1] > 0.9


def test_light_ink_on_a_transparent_background_is_composited_on_black(nine):
    rgba = np.full((28, 28, 4), 255, np.uint8)
    rgba[..., 3] = nine
    assert np.corrcoef(decode(png_bytes(rgba)).ravel(), nine.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("mode", ["P", "CMYK", "1", "LA", "RGB", "I;16"])
def test_other_modes_give_the_digit(nine, mode):
    if mode == "I;16":
        image = Image.fromarray(nine.astype(np.uint16) * 257)
        data = encoded(image, "PNG")
        assert Image.open(io.BytesIO(data)).mode.startswith("I")
    else:
        data = encoded(Image.fromarray(nine).convert(mode), "JPEG" if mode == "CMYK" else "PNG")
    out = decode(data)
    assert np.corrcoef(out.ravel(), nine.ravel())[0, 1] > 0.8


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP"])
def test_other_formats(nine, fmt):
    out = decode(encoded(Image.fromarray(nine).convert("RGB"), fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    assert np.corrcoef(out.ravel(), nine.ravel())[0, 1] > 0.9


def test_an_animated_gif_is_read_from_its_first_frame(nine):
    frames = [Image.fromarray(nine).convert("P"), Image.fromarray(255 - nine).convert("P")]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert np.corrcoef(decode(data).ravel(), nine.ravel())[0, 1] > 0.9


def test_a_blank_or_tiny_image_gives_a_blank_or_centred_digit():
    assert not decode(png_bytes(np.zeros((50, 50), np.uint8))).any()
    dot = decode(png_bytes(np.full((1, 1), 255, np.uint8), mode="RGB"))
    assert dot.shape == (28, 28)


@pytest.mark.parametrize(("data", "status", "words"), [
    (b"", 400, "empty"),
    (b"\x00\x01\x02 definitely not an image" * 10, 400, "not an image"),
    (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>', 400, "not an image"),
])
def test_uploads_that_are_not_images(data, status, words):
    with pytest.raises(ImageError) as caught:
        decode(data)
    assert image_error_status(caught.value) == status and words in str(caught.value)


def test_a_truncated_png_is_a_400(nine):
    data = encoded(Image.fromarray(np.kron(nine, np.ones((4, 4), np.uint8))).convert("RGB"), "PNG")
    with pytest.raises(ImageError) as caught:
        decode(data[: len(data) // 2])
    assert image_error_status(caught.value) == 400


def test_an_unsupported_type_is_a_415(nine):
    with pytest.raises(ImageError) as caught:
        decode(encoded(Image.fromarray(nine), "TIFF"))
    assert image_error_status(caught.value) == 415 and "TIFF" in str(caught.value)


def test_more_pixels_than_the_limit_is_a_413_before_decoding(nine):
    with pytest.raises(ImageError) as caught:
        decode(encoded(Image.new("L", (200, 100)), "PNG"), max_pixels=10_000)
    assert image_error_status(caught.value) == 413 and "200x100" in str(caught.value)


def test_a_decompression_bomb_header_is_a_413():
    """A PNG that claims 100000x100000 pixels: refused from its header, nothing inflated."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    with pytest.raises(ImageError) as caught:
        decode(bomb)
    assert image_error_status(caught.value) == 413
