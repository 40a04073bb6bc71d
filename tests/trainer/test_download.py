"""Fetching missing MNIST files, through fake fetchers only: no test touches the network."""

from __future__ import annotations

import gzip
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from inferq import idx
from tests.trainer.helpers import idx_bytes
from trainer import data, download, mnist_files
from trainer.errors import TrainerError

NAME = "t10k-labels-idx1-ubyte"


class FakeMirrors:
    """Serves ``<mirror><name>.gz`` from ``files``; records every URL asked for."""

    def __init__(self, files: dict[str, bytes], failing: tuple[str, ...] = ()) -> None:
        self.files = files
        self.failing = failing
        self.asked: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        if url.startswith(self.failing):
            raise urllib.error.URLError("no route to host")
        return self.files[url.rsplit("/", 1)[1]]


@pytest.fixture
def official(mnist_dir: Path) -> dict[str, bytes]:
    return {f"{name}.gz": (mnist_dir / f"{name}.gz").read_bytes() for name in mnist_files.ALL_FILES}


def test_downloads_and_verifies_a_file(tmp_path: Path, official: dict[str, bytes]) -> None:
    mirrors = FakeMirrors(official)
    written = download.download_files(tmp_path / "new", [NAME], fetch=mirrors)
    assert written == [tmp_path / "new" / f"{NAME}.gz"]
    assert written[0].read_bytes() == official[f"{NAME}.gz"]
    assert mirrors.asked == [f"{download.MIRRORS[0]}{NAME}.gz"]
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == [f"{NAME}.gz"]


def test_tries_the_next_mirror_when_one_fails(tmp_path: Path, official: dict[str, bytes]) -> None:
    mirrors = FakeMirrors(official, failing=(download.MIRRORS[0],))
    download.download_files(tmp_path, [NAME], fetch=mirrors)
    assert mirrors.asked == [f"{mirror}{NAME}.gz" for mirror in download.MIRRORS]
    assert data.read_idx(tmp_path / f"{NAME}.gz", idx.LABELS_MAGIC)[0].shape == (10000,)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (gzip.compress(idx_bytes(idx.LABELS_MAGIC, np.zeros(10000, np.uint8))), "is not the official"),
        (b"<html>rate limited</html>", "not a complete gzip file"),
    ],
)
def test_a_file_with_the_wrong_content_is_refused(tmp_path: Path, payload: bytes, problem: str) -> None:
    data_dir = tmp_path / "new"
    with pytest.raises(TrainerError) as caught:
        download.download_files(data_dir, [NAME], fetch=FakeMirrors({f"{NAME}.gz": payload}))
    assert problem in str(caught.value)
    assert f"{NAME}.gz not found in {data_dir}" in str(caught.value)
    assert not data_dir.exists()


def test_offline_says_exactly_where_to_put_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "fetch_url", FakeMirrors({}, failing=download.MIRRORS))
    data_dir = tmp_path / "mnist"
    with pytest.raises(TrainerError) as caught:
        data.load_mnist(data_dir)
    message = str(caught.value)
    assert "\n" not in message
    assert f"MNIST file(s) train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz not found in {data_dir}" in message
    first_url = f"{download.MIRRORS[0]}train-images-idx3-ubyte.gz"
    assert f"download failed: {first_url}: <urlopen error no route to host>" in message
    assert ", ".join(mnist_files.ALL_FILES) in message
    assert mnist_files.SHARED_COPY in message


def test_load_fetches_what_is_missing(
    tmp_path: Path, official: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    mirrors = FakeMirrors(official)
    monkeypatch.setattr(download, "fetch_url", mirrors)
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    (data_dir / "t10k-labels-idx1-ubyte.gz").write_bytes(official["t10k-labels-idx1-ubyte.gz"])
    mnist = data.load_mnist(data_dir)
    assert [url.rsplit("/", 1)[1] for url in mirrors.asked] == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
    ]
    assert mnist.training.images.shape == (60000, 784)
    assert mnist.testing.labels[104] == 9
