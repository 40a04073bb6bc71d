"""The MNIST loaders: IDX files gzipped or plain, corrupt ones, the real files, and mnist_png trees."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inferq import idx
from tests.trainer.helpers import idx_bytes, write_idx
from trainer import data, mnist_files
from trainer.data import Split
from trainer.errors import TrainerError
from trainer.png_export import write_png_tree

IMAGES = idx.IMAGES_MAGIC
LABELS = idx.LABELS_MAGIC


@pytest.fixture
def small_images() -> np.ndarray:
    return np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_reads_idx_gzipped_or_plain(tmp_path: Path, small_images: np.ndarray, name: str) -> None:
    path = write_idx(tmp_path / name, IMAGES, small_images)
    array, digest = data.read_idx(path, IMAGES)
    np.testing.assert_array_equal(array, small_images)
    assert digest == hashlib.sha256(idx_bytes(IMAGES, small_images)).hexdigest()


def test_truncated_gzip_is_named(tmp_path: Path, small_images: np.ndarray) -> None:
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES, small_images))[:-20])
    with pytest.raises(TrainerError) as caught:
        data.read_idx(path, IMAGES)
    assert str(caught.value).startswith(f"{path}: truncated or corrupt gzip file")


def test_truncated_plain_file_is_named(tmp_path: Path, small_images: np.ndarray) -> None:
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(IMAGES, small_images)[:-100])
    with pytest.raises(TrainerError) as caught:
        data.read_idx(path, IMAGES)
    assert str(caught.value).startswith(f"{path}: holds 2252 bytes of data, its header announces 2352")


@pytest.mark.parametrize("content", [b"\x00\x00\x08\x01" + bytes(12), b"PK\x03\x04 a zip file", b"\x00"])
def test_bad_magic_is_named(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "images"
    path.write_bytes(content)
    with pytest.raises(TrainerError) as caught:
        data.read_idx(path, IMAGES)
    assert str(caught.value).startswith(f"{path}: not an IDX file of this kind")
    assert "expected 0x00000803" in str(caught.value)


def test_official_name_with_other_content_fails_its_checksum(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", LABELS, np.zeros(10000, np.uint8))
    with pytest.raises(TrainerError) as caught:
        data.read_idx(path, LABELS)
    message = str(caught.value)
    assert message.startswith(f"{path}: content's sha256 is ")
    assert mnist_files.SHA256["t10k-labels-idx1-ubyte"] in message


def test_official_file_decompressed_passes_its_checksum(tmp_path: Path, mnist_dir: Path) -> None:
    plain = tmp_path / "t10k-labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    labels, digest = data.read_idx(plain, LABELS)
    assert digest == mnist_files.SHA256["t10k-labels-idx1-ubyte"]
    assert labels.shape == (10000,)


def test_real_test_split_loads_with_official_checksums(mnist_dir: Path) -> None:
    split = data.load_idx_split(mnist_dir, "testing")
    assert split.images.shape == (10000, 784)
    assert split.images.dtype == np.uint8
    assert split.labels[104] == 9  # the seed's example, mnist_png/testing/9/104.png
    assert split.checksums == {
        "t10k-images-idx3-ubyte.gz": mnist_files.SHA256["t10k-images-idx3-ubyte"],
        "t10k-labels-idx1-ubyte.gz": mnist_files.SHA256["t10k-labels-idx1-ubyte"],
    }


def test_missing_files_say_where_to_put_them_and_write_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "absent"
    with pytest.raises(TrainerError) as caught:
        data.load_mnist(data_dir, download_missing=False)
    message = str(caught.value)
    assert f"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz not found in {data_dir}" in message
    assert "downloading is off" in message
    assert mnist_files.SHARED_COPY in message
    assert "MNIST_DATA_DIR" in message
    assert not data_dir.exists()


def make_png_tree(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    for split in mnist_files.SPLITS:
        write_png_tree(Split(images, labels, {}), split, root)


def test_png_tree_reads_back_in_index_order(tmp_path: Path, mnist_dir: Path) -> None:
    source = data.load_idx_split(mnist_dir, "testing")
    images, labels = source.images[:40], source.labels[:40]
    make_png_tree(tmp_path, images, labels)
    assert (tmp_path / "testing" / "7" / "0.png").is_file()  # test image 0 is a 7
    loaded = data.load_mnist(tmp_path, download_missing=False)
    assert loaded.source.startswith("mnist_png tree")
    np.testing.assert_array_equal(loaded.testing.images, images)
    np.testing.assert_array_equal(loaded.testing.labels, labels)
    assert len(loaded.training.checksums) == 1


def test_png_of_wrong_size_is_named(tmp_path: Path) -> None:
    make_png_tree(tmp_path, np.zeros((2, 784), np.uint8), np.array([3, 4], np.uint8))
    bad = tmp_path / "testing" / "4" / "1.png"
    Image.new("L", (32, 32)).save(bad)
    with pytest.raises(TrainerError) as caught:
        data.load_png_split(tmp_path, "testing")
    assert str(caught.value).startswith(f"{bad}: a 32x32 L image")


def test_colour_png_is_named(tmp_path: Path) -> None:
    make_png_tree(tmp_path, np.zeros((1, 784), np.uint8), np.array([3], np.uint8))
    bad = tmp_path / "testing" / "3" / "0.png"
    Image.new("RGB", (28, 28)).save(bad)
    with pytest.raises(TrainerError, match="28x28 RGB image; MNIST images are 28x28 8-bit grayscale"):
        data.load_png_split(tmp_path, "testing")


def test_corrupt_png_is_named(tmp_path: Path) -> None:
    make_png_tree(tmp_path, np.full((1, 784), 200, np.uint8), np.array([5], np.uint8))
    bad = tmp_path / "testing" / "5" / "0.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(TrainerError) as caught:
        data.load_png_split(tmp_path, "testing")
    assert str(caught.value).startswith(f"{bad}: unreadable or corrupt image")


def test_png_tree_with_a_stray_directory_is_refused(tmp_path: Path) -> None:
    make_png_tree(tmp_path, np.zeros((1, 784), np.uint8), np.array([1], np.uint8))
    (tmp_path / "training" / "ten").mkdir()
    with pytest.raises(TrainerError, match="ten: not a label directory 0..9"):
        data.load_png_split(tmp_path, "training")


def test_empty_png_split_is_refused(tmp_path: Path) -> None:
    (tmp_path / "testing" / "0").mkdir(parents=True)
    with pytest.raises(TrainerError, match="testing: no PNG images"):
        data.load_png_split(tmp_path, "testing")
