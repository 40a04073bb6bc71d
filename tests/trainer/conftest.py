"""Fixtures for the trainer's tests: the shared real MNIST files, and a guard that no test downloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.helpers import MNIST_DIR
from trainer import download, mnist_files


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(url: str) -> bytes:
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(download, "fetch_url", refuse)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The four official gzipped IDX files (the repository's shared copy, or TEST_MNIST_DIR)."""
    missing = [name for name in mnist_files.ALL_FILES if not (MNIST_DIR / f"{name}.gz").is_file()]
    if missing:
        pytest.skip(f"real MNIST not found in {MNIST_DIR} (missing {', '.join(missing)}); set TEST_MNIST_DIR")
    return MNIST_DIR
