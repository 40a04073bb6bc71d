"""Uploaded files to a model's image input: MNIST's path unchanged, the standard steps, hostile files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from api.images import decoding as images
from api.images.errors import ImageError, image_error_status
from api.images.inputs import ImageInput, image_input, to_model_values
from api.images.preprocessing import decode_for
from inferq.model_config import ImageConfig
from inferq.model_spec import ANY, TensorSpec
from tests.conftest import png_bytes
from tests.support.specs import mnist_spec

LIMIT = 4096 * 4096
RED, GREEN, BLUE, YELLOW, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 255, 255)


def target(height: int, width: int, channels: int = 3, **config) -> ImageInput:
    tensor = TensorSpec("x", "float32", (ANY, height, width, channels))
    return ImageInput(tensor, height, width, channels, False, ImageConfig(channels=channels, **config))


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def decode(data: bytes, image_input: ImageInput, max_pixels: int = LIMIT) -> np.ndarray:
    return decode_for(data, image_input, max_pixels=max_pixels)


def bands(height: int = 32) -> np.ndarray:
    """64 wide: four bands of 16 columns, red, green, blue, yellow."""
    return np.repeat(np.array([RED, GREEN, BLUE, YELLOW], np.uint8), 16, axis=0)[np.newaxis].repeat(height, axis=0)


@pytest.mark.parametrize("source", ["digit", "large"])
def test_the_mnist_model_decodes_as_api_images_does(digit_104, source):
    data = digit_104
    if source == "large":  # dark on white, larger, RGB: the whole MNIST treatment
        nine = np.asarray(Image.open(io.BytesIO(digit_104)))
        data = encoded(Image.fromarray(255 - np.kron(nine, np.ones((9, 9), np.uint8))).convert("RGB"), "JPEG")
    found = image_input(mnist_spec(1))
    pixels = decode(data, found)
    assert pixels.shape == (28, 28, 1) and pixels.dtype == np.uint8
    assert np.array_equal(pixels[..., 0], images.decode(data, max_pixels=LIMIT))
    sent = to_model_values(pixels[np.newaxis], found)
    assert np.array_equal(sent, images.decode(data, max_pixels=LIMIT).reshape(1, -1))


def test_stretch_squeezes_every_band_into_the_square():
    out = decode(png_bytes(bands()), target(32, 32, resize="stretch"))
    assert out.shape == (32, 32, 3)
    for index, colour in enumerate([RED, GREEN, BLUE, YELLOW]):
        assert (out[:, index * 8 + 2:index * 8 + 6] == colour).all()


def test_fit_keeps_the_aspect_and_pads_with_black():
    out = decode(png_bytes(bands()), target(32, 32, resize="fit"))
    assert (out[:8] == 0).all() and (out[24:] == 0).all()
    for index, colour in enumerate([RED, GREEN, BLUE, YELLOW]):
        assert (out[8:24, index * 8 + 2:index * 8 + 6] == colour).all()


def test_crop_keeps_the_aspect_and_takes_the_centre():
    out = decode(png_bytes(bands()), target(32, 32, resize="crop"))
    assert (out[:, :14] == GREEN).all() and (out[:, 18:] == BLUE).all()


def test_a_tall_image_fits_between_black_columns():
    out = decode(png_bytes(bands().transpose(1, 0, 2).copy()), target(32, 32, resize="fit"))
    assert (out[:, :8] == 0).all() and (out[:, 24:] == 0).all() and (out[2:6, 10:22] == RED).all()


def test_the_target_may_be_wider_than_tall():
    out = decode(png_bytes(bands(16)), target(8, 32, resize="crop"))
    assert out.shape == (8, 32, 3) and (out[:, :6] == RED).all() and (out[:, -6:] == YELLOW).all()


def test_transparency_is_composited_on_white():
    rgba = np.zeros((8, 8, 4), np.uint8)  # transparent black
    rgba[:, 4:] = (*RED, 255)
    out = decode(png_bytes(rgba), target(8, 8))
    assert (out[:, :3] == WHITE).all() and (out[:, 5:] == RED).all()
    half = rgba.copy()
    half[..., 3] = 128  # half opaque red over white is pink
    assert np.abs(decode(png_bytes(half), target(8, 8))[0, 7].astype(int) - (255, 127, 127)).max() <= 1


def test_a_palette_image_with_a_transparent_index():
    palette = Image.fromarray(bands(8)).convert("P")
    index = palette.getpixel((0, 0))  # red's
    out = decode(encoded(palette, "PNG", transparency=index), target(8, 64))
    assert (out[:, :16] == WHITE).all() and (out[:, 16:32] == GREEN).all() and (out[:, 48:] == YELLOW).all()
    gif = decode(encoded(palette, "GIF", transparency=index), target(8, 64))
    assert (gif[:, :16] == WHITE).all() and (gif[:, 16:32] == GREEN).all()


@pytest.mark.parametrize("mode", ["L", "LA", "1", "P"])
def test_grayscale_sources_become_three_equal_channels(mode):
    gray = np.tile(np.array([0, 255], np.uint8).repeat(4), (8, 1))
    out = decode(png_bytes(gray, mode=mode), target(8, 8))
    assert (out[:, :4] == 0).all() and (out[:, 4:] == 255).all()


def test_16_bit_grayscale_is_brought_to_8_bits_by_its_range():
    gray = np.array([[0, 257 * 128, 65535, 1000]], np.uint16)
    source = Image.fromarray(gray)
    assert source.mode == "I;16"
    assert decode(encoded(source), target(1, 4, channels=1))[0, :, 0].tolist() == [0, 128, 255, 4]


def test_colour_to_one_channel_is_the_luma():
    out = decode(png_bytes(bands()), target(32, 64, channels=1))
    assert out.shape == (32, 64, 1)
    assert out[0, [0, 16, 32, 48], 0].tolist() == [76, 150, 29, 226]  # ITU-R 601: 0.299 R + 0.587 G + 0.114 B


def test_invert_makes_a_white_page_black():
    found = target(8, 8, channels=1, invert=True, scale="0..1")
    values = to_model_values(decode(png_bytes(np.full((20, 20), 255, np.uint8)), found)[np.newaxis], found)
    assert values.dtype == np.float32 and not values.any()


def test_the_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees
    data = encoded(Image.fromarray(bands()), "JPEG", quality=95, exif=exif)
    out = decode(data, target(32, 64)).astype(int)
    assert np.abs(out[16, 2] - YELLOW).max() < 40 and np.abs(out[16, 61] - RED).max() < 40


def test_a_large_jpeg_is_drafted_to_the_target_without_losing_its_geometry():
    large = np.zeros((768, 1024, 3), np.uint8)
    large[:384, :512], large[:384, 512:], large[384:, :512], large[384:, 512:] = RED, GREEN, BLUE, WHITE
    data = encoded(Image.fromarray(large), "JPEG", quality=95)
    for resize in ("stretch", "fit", "crop"):
        out = decode(data, target(224, 224, resize=resize)).astype(int)
        top, bottom = (0, 223) if resize != "fit" else (30, 193)
        for (row, col), colour in {(top + 4, 4): RED, (top + 4, 219): GREEN, (bottom - 4, 4): BLUE,
                                   (bottom - 4, 219): WHITE}.items():
            assert np.abs(out[row, col] - colour).max() < 40, (resize, row, col)


def png_bomb() -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    data = encoded(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)), "JPEG")
    return data[: len(data) // 2]


@pytest.mark.parametrize(("data", "status", "words"), [
    (png_bomb(), 413, "more than 10000 pixels"),
    (encoded(Image.new("RGB", (200, 100))), 413, "200x100"),
    (truncated_jpeg(), 400, "truncated"),
    (b"just some text, not a picture\n" * 20, 400, "not an image"),
    (b"", 400, "empty"),
    (encoded(Image.new("RGB", (8, 8)), "TIFF"), 415, "TIFF"),
], ids=["bomb", "too-many-pixels", "truncated", "text", "empty", "tiff"])
def test_hostile_files_are_image_errors(data, status, words):
    with pytest.raises(ImageError) as caught:
        decode(data, target(224, 224), max_pixels=10_000)
    assert image_error_status(caught.value) == status and words in str(caught.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3))),
       st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP"]), st.binary(max_size=64), st.data())
def test_damaged_images_are_decoded_or_refused(pixels, fmt, exif, data):
    original = bytearray(encoded(Image.fromarray(pixels), fmt, **({"exif": b"Exif\x00\x00" + exif}
                                                                 if fmt in ("JPEG", "PNG", "WEBP") else {})))
    for _ in range(data.draw(st.integers(0, 6))):
        original[data.draw(st.integers(0, len(original) - 1))] = data.draw(st.integers(0, 255))
    found = target(7, 9, resize=data.draw(st.sampled_from(["stretch", "fit", "crop"])))
    try:
        out = decode(bytes(original[: data.draw(st.integers(1, len(original)))]), found, max_pixels=100_000)
    except ImageError as error:
        assert 400 <= image_error_status(error) < 500 and str(error)
    else:
        assert out.shape == (7, 9, 3) and out.dtype == np.uint8
