"""Property-based fuzzing of the decoders: whatever the bytes, a 28x28 image (or bulk file of them) or an
ImageError with a 4xx status."""

from __future__ import annotations

import io
import struct

import numpy as np
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from api.images import decoding as images
from api.images.arrays import decode_array
from api.images.errors import ImageError, image_error_status
from api.images.inputs import image_input
from tests.support.specs import mnist_spec

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FORMATS = ["PNG", "JPEG", "GIF", "BMP", "WEBP"]
MODES = ["L", "RGB", "RGBA", "P", "1", "LA", "CMYK", "I;16"]


def decode_or_refuse(data: bytes) -> None:
    try:
        out = images.decode(data, max_pixels=1_000_000)
    except ImageError as error:
        assert 400 <= image_error_status(error) < 500 and str(error)
    else:
        assert out.shape == (28, 28) and out.dtype == np.uint8


def encode(pixels: np.ndarray, mode: str, fmt: str) -> bytes:
    image = Image.fromarray(pixels.astype(np.uint16) * 257) if mode == "I;16" else Image.fromarray(pixels).convert(mode)
    if fmt == "JPEG" and image.mode not in ("L", "RGB", "CMYK"):
        image = image.convert("RGB")
    if fmt != "PNG" and image.mode.startswith("I"):
        image = image.convert("L")
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError):
        reject()  # a mode this format cannot hold: not an upload anyone can make
    return buffer.getvalue()


pictures = arrays(np.uint8, st.tuples(st.integers(1, 48), st.integers(1, 48)))


@FUZZ
@given(st.binary(max_size=4096))
def test_any_bytes(data):
    decode_or_refuse(data)


@FUZZ
@given(pictures, st.sampled_from(MODES), st.sampled_from(FORMATS))
def test_every_real_image_is_answered(pixels, mode, fmt):
    out = images.decode(encode(pixels, mode, fmt), max_pixels=1_000_000)
    assert out.shape == (28, 28) and out.dtype == np.uint8


@FUZZ
@given(pictures, st.sampled_from(FORMATS), st.data())
def test_damaged_images(pixels, fmt, data):
    original = bytearray(encode(pixels, "L", fmt))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(original)))
    decode_or_refuse(bytes(original[:cut]))


MNIST_INPUT = image_input(mnist_spec(1))
#: Dimensions as headers may declare them: small, the model's, zero, and far past any upload.
SIZES = st.one_of(st.integers(0, 3), st.sampled_from([28, 784, 2**31, 2**32 - 1, 2**40, 2**62]))


def bulk_or_refuse(data: bytes) -> None:
    try:
        out = decode_array(data, MNIST_INPUT, 1024)
    except ImageError as error:
        assert 400 <= image_error_status(error) < 500 and str(error)
    else:
        assert 1 <= len(out) <= 1024 and out.shape[1:] == (28, 28, 1) and out.dtype == np.uint8


@FUZZ
@given(st.lists(SIZES, max_size=4), st.sampled_from(["|u1", "<f4", "|b1"]), st.booleans(), st.binary(max_size=4096))
def test_any_declared_npy_shape(shape, descr, fortran_order, data):
    """Whatever a .npy header declares, the bytes that follow decide: nothing is allocated for it."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran_order,
                                                  "shape": tuple(shape)})
    bulk_or_refuse(buffer.getvalue() + data)


@FUZZ
@given(st.tuples(SIZES, SIZES, SIZES), st.binary(max_size=4096))
def test_any_declared_idx_shape(dims, data):
    bulk_or_refuse(struct.pack(">IIII", 0x00000803, *(size % 2**32 for size in dims)) + data)
