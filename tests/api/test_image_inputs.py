"""Which input takes images, with which preprocessing, and the values pixels become."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from api.images.inputs import ImageInput, ImageInputError, image_input, to_model_values
from inferq.model_config import ImageConfig, ModelConfig
from inferq.model_spec import ANY, ModelSpec, TensorSpec
from tests.support.specs import mnist_spec


def spec(*inputs: tuple[str, tuple[int, ...]], image: ImageConfig | None = None, **config) -> ModelSpec:
    tensors = tuple(TensorSpec(f"in{index}", dtype, shape) for index, (dtype, shape) in enumerate(inputs))
    outputs = (TensorSpec("probabilities", "float32", (ANY, 10)),)
    return ModelSpec("m", 1, "serving_default", tensors, outputs, ModelConfig(image=image, **config))


def test_the_mnist_model_gets_mnist_preprocessing_without_a_config():
    found = image_input(mnist_spec(1))
    assert (found.height, found.width, found.channels, found.flat) == (28, 28, 1, True)
    assert found.config == ImageConfig(preprocessing="mnist", channels=1)
    assert found.tensor.name == "inputdata"


@pytest.mark.parametrize("shape", [(ANY, 28, 28), (ANY, 28, 28, 1)])
def test_28x28_grayscale_image_shapes_get_mnist_preprocessing_too(shape):
    found = image_input(spec(("uint8", shape)))
    assert found.config.preprocessing == "mnist" and not found.flat and found.pixels_shape == (28, 28, 1)


def test_an_rgb_input_gets_the_standard_steps_with_its_channels():
    found = image_input(spec(("float32", (ANY, 224, 224, 3))))
    assert found.pixels_shape == (224, 224, 3) and not found.flat
    assert found.config == ImageConfig(channels=3)


def test_the_config_is_in_force_with_its_channels_filled_from_the_shape():
    config = ImageConfig(scale="-1..1", resize="crop", invert=True)
    found = image_input(spec(("float32", (ANY, 32, 32, 3)), image=config, labels=tuple("abcdefghij")))
    assert found.config == ImageConfig(scale="-1..1", resize="crop", invert=True, channels=3)


def test_a_uint8_input_with_labels_and_channels_1():
    found = image_input(spec(("uint8", (ANY, 28, 28, 1)), image=ImageConfig(channels=1), labels=("a", "b")))
    assert found.config == ImageConfig(channels=1) and found.pixels_shape == (28, 28, 1)


def test_a_uint8_input_cannot_take_pixels_scaled_to_0_1():
    with pytest.raises(ImageInputError, match=r"model 'm': its config.json and input disagree: .*uint8.*0\.\.1"):
        image_input(spec(("uint8", (ANY, 28, 28, 1)), image=ImageConfig(channels=1, scale="0..1")))


@pytest.mark.parametrize(("n", "channels", "side"), [(784, None, 28), (3072, 3, 32), (4096, 1, 64), (4, None, 2)])
def test_a_flat_input_is_square_of_the_configs_channels(n, channels, side):
    found = image_input(spec(("float32", (ANY, n)), image=ImageConfig(channels=channels)))
    assert found.flat and found.pixels_shape == (side, side, channels or 1)


@pytest.mark.parametrize("inputs", [
    [("float32", (ANY, 4))],  # tabular
    [("float32", (ANY, 3072))],  # flat, but not MNIST, and no config says it is an image
    [("string", (ANY,))],
    [("string", (ANY, 28, 28))],
    [("bool", (ANY, 28, 28))],
    [("float32", (ANY, ANY, ANY, 3))],  # any size
    [("float32", (ANY, 28, ANY))],
    [("float32", (ANY, 28, 28, 4))],
    [("float32", (1, 28, 28, 1))],  # no batch dimension
    [("float32", (ANY, 28, 28, 1)), ("float32", (ANY, 4))],  # two inputs
    [],
])
def test_models_that_take_no_images(inputs):
    assert image_input(spec(*inputs)) is None


@pytest.mark.parametrize(("inputs", "config"), [
    ([("float32", (ANY, 5))], ImageConfig()),  # not square
    ([("float32", (ANY, 784))], ImageConfig(channels=3)),
    ([("float32", (ANY, 28, 28, 1)), ("float32", (ANY, 4))], ImageConfig()),
    ([("float32", (ANY, 32, 32, 1))], ImageConfig(channels=3)),
    ([("float32", (ANY, 32, 32))], ImageConfig(channels=3)),
    ([("float32", (ANY, 32, 32, 3))], ImageConfig(preprocessing="mnist")),
    ([("int32", (ANY, 32, 32, 3))], ImageConfig(scale="-1..1")),
    ([("int8", (ANY, 32, 32, 3))], ImageConfig()),
])
def test_a_config_its_input_cannot_follow_is_refused(inputs, config):
    with pytest.raises(ImageInputError, match="model 'm': its config.json and input disagree"):
        image_input(spec(*inputs, image=config))


def test_an_int8_image_shaped_input_cannot_take_pixels():
    with pytest.raises(ImageInputError, match="model 'm': it cannot take images: .*int8"):
        image_input(spec(("int8", (ANY, 28, 28, 1))))


def batch(n: int, shape: tuple[int, int, int]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_flat_mnist_values_are_the_pixels_as_they_travel_today():
    found = image_input(mnist_spec(1))
    pixels = batch(3, (28, 28, 1))
    values = to_model_values(pixels, found)
    assert values.dtype == np.uint8 and values.shape == (3, 784)
    assert np.array_equal(values, pixels.reshape(3, -1))


def test_a_float_input_at_0_255_stays_uint8_and_shaped_as_the_tensor():
    found = image_input(spec(("float32", (ANY, 32, 32)), image=ImageConfig(invert=True)))
    pixels = batch(2, (32, 32, 1))
    values = to_model_values(pixels, found)
    assert values.dtype == np.uint8 and values.shape == (2, 32, 32)
    assert np.array_equal(values, 255 - pixels[..., 0])


def test_float32_rgb_at_minus_1_to_1():
    found = image_input(spec(("float32", (ANY, 32, 32, 3)), image=ImageConfig(scale="-1..1")))
    pixels = batch(2, (32, 32, 3))
    pixels[0, 0, 0] = (0, 255, 128)
    values = to_model_values(pixels, found)
    assert values.dtype == np.float32 and values.shape == (2, 32, 32, 3)
    assert values.min() >= -1 and values.max() <= 1
    assert values[0, 0, 0].tolist() == [-1.0, 1.0, pytest.approx(128 / 127.5 - 1, abs=1e-6)]


def test_pixels_of_another_shape_are_a_programming_error():
    found = image_input(mnist_spec(1))
    with pytest.raises(ValueError, match=r"expected uint8 pixels \[N, 28, 28, 1\], got float32"):
        to_model_values(np.zeros((1, 28, 28, 1), np.float32), found)
    with pytest.raises(ValueError, match=r"got uint8 \[1, 28, 28\]"):
        to_model_values(np.zeros((1, 28, 28), np.uint8), found)


def test_an_image_input_cannot_be_made_that_its_values_cannot_follow():
    tensor = TensorSpec("x", "uint16", (ANY, 8, 8, 3))
    with pytest.raises(ImageInputError, match="uint16.*-1..1"):
        ImageInput(tensor, 8, 8, 3, False, ImageConfig(channels=3, scale="-1..1"))


SCALES = {"0..1": (0.0, 1.0), "-1..1": (-1.0, 1.0)}


@given(
    pixels=arrays(np.uint8, st.tuples(st.integers(1, 3), st.just(4), st.just(4), st.sampled_from([1, 3]))),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
    scale=st.sampled_from(["0..255", "0..1", "-1..1"]),
    invert=st.booleans(),
    flat=st.booleans(),
)
def test_values_are_in_the_scales_range_exact_at_its_ends_and_monotonic(pixels, dtype, scale, invert, flat):
    channels = pixels.shape[-1]
    shape = (ANY, 16 * channels) if flat else (ANY, 4, 4, channels)
    config = ImageConfig(channels=channels, scale=scale, invert=invert)
    found = image_input(spec((dtype, shape), image=config))
    values = to_model_values(pixels, found)
    assert values.shape == (len(pixels), *shape[1:])
    values = values.reshape(pixels.shape)
    source = 255 - pixels if invert else pixels
    if scale == "0..255":
        assert values.dtype == np.uint8 and np.array_equal(values, source)
        return
    low, high = SCALES[scale]
    assert values.dtype == np.dtype(dtype)
    assert values.min() >= low and values.max() <= high
    assert np.all(values[source == 0] == low) and np.all(values[source == 255] == high)
    order = np.argsort(source.ravel(), kind="stable")
    assert np.all(np.diff(values.ravel()[order].astype(np.float64)) >= 0)
    tolerance = {"float16": 1e-3, "float32": 1e-6, "float64": 1e-12}[dtype]
    expected = source / 255.0 if scale == "0..1" else source / 127.5 - 1
    assert np.allclose(values, expected, atol=tolerance, rtol=0)
