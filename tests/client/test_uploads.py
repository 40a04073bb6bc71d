"""What the client sends is what the API reads: the same pixels, the same images, in order."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from api.images import decoding as api_images
from api.images.uploads import read_upload
from api.queue.model_lookup import Served
from inferq.client import routes, uploads
from inferq.settings import Settings
from tests.client.fake_service import numbered_images
from tests.conftest import png_bytes
from tests.support.specs import mnist_spec

#: The model the API reads the uploads for: MNIST, as its workers describe it.
MNIST = Served(mnist_spec(3), [3], addressed=False)


def read_by_the_api(batch: list[uploads.Item]):
    body, content_type = uploads.multipart(batch)
    request = Request(EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ())
    return read_upload(request, Settings(), MNIST)


def test_routes_target_the_default_model_or_a_named_one():
    assert (routes.recognize(None), routes.jobs(None)) == ("/recognize", "/jobs")
    assert (routes.recognize("cnn"), routes.jobs("cnn")) == ("/models/cnn/recognize", "/models/cnn/jobs")
    assert routes.jobs("a b/c") == "/models/a%20b%2Fc/jobs"
    assert routes.job("abc") == "/jobs/abc" and routes.job("abc", "/elsewhere/abc") == "/elsewhere/abc"


def test_arrays_files_bytes_and_pil_images_reach_the_api_as_the_same_pixels_in_order(tmp_path):
    digits = numbered_images(5)
    png = png_bytes(digits[3])
    (tmp_path / "three.png").write_bytes(png)
    np.save(tmp_path / "bulk.npy", digits[:2])
    found = uploads.items([digits[:2].reshape(2, 784), tmp_path / "three.png", png, Image.fromarray(digits[4]),
                           str(tmp_path / "bulk.npy")])
    batches = list(uploads.batches(found, 1024))
    uploads_read = [read_by_the_api(batch) for batch in batches]
    decoded = [api_images.decode(png_bytes(digit), max_pixels=10**6).reshape(784) for digit in digits[3:]]
    expected = np.stack([*digits[:2].reshape(2, 784), decoded[0], decoded[0], decoded[1],
                         *digits[:2].reshape(2, 784)])
    pixels = np.concatenate([upload.inputs["inputdata"] for upload in uploads_read])
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, expected)
    assert [name for item in found for name in item.names()] == [
        "array-0#0", "array-0#1", "three.png", "image-2", "image-3.png", "bulk.npy#0", "bulk.npy#1"]
    # The API answers a request's image files and bulk files each in order, not interleaved: apart.
    assert [[type(item).__name__ for item in batch] for batch in batches] == [
        ["Pixels"], ["ImageFile"] * 3, ["Pixels"]]


def test_idx_files_gzipped_or_not_are_sent_as_pixels(tmp_path):
    import gzip
    import struct

    digits = numbered_images(3)
    idx = struct.pack(">IIII", 0x803, 3, 28, 28) + digits.tobytes()
    (tmp_path / "d.idx.gz").write_bytes(gzip.compress(idx))
    for item in (uploads.items(idx)[0], uploads.items(tmp_path / "d.idx.gz")[0]):
        assert isinstance(item, uploads.Pixels) and np.array_equal(item.array, digits.reshape(3, 784))


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((2, 28, 28), np.float32), "must be uint8"),
    (np.zeros((2, 27, 27), np.uint8), "shape [2, 27, 27], expected [N, 28, 28], [N, 784] or [28, 28]"),
])
def test_arrays_the_api_would_refuse_are_refused_with_what_was_expected(array, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        uploads.items(array)


def test_a_thing_that_is_no_image_is_refused_with_its_type():
    with pytest.raises(TypeError, match="image 1: a path, bytes, a PIL image or a numpy array, not int"):
        uploads.items([np.zeros((28, 28), np.uint8), 7])


def test_batches_split_arrays_at_the_limit_and_keep_every_image_in_order():
    found = [uploads.Pixels("a", numbered_images(6).reshape(6, 784)),
             uploads.Pixels("b", numbered_images(3).reshape(3, 784)), uploads.ImageFile("f.png", b"png")]
    batches = list(uploads.batches(found, 4))
    assert [sum(item.count for item in batch) for batch in batches] == [4, 4, 1, 1]
    assert [name for batch in batches for item in batch for name in item.names()] == [
        *(f"a#{i}" for i in range(6)), "b#0", "b#1", "b#2", "f.png"]


def test_a_filename_cannot_break_the_multipart_header():
    upload = read_by_the_api([uploads.ImageFile('x"; name="evil\r\n.png', png_bytes(numbered_images(1)[0]))])
    assert len(upload.filenames) == 1 and "\r" not in upload.filenames[0]
    assert upload.inputs["inputdata"].shape == (1, 784) and upload.inputs["inputdata"].dtype == np.uint8
