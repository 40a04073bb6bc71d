"""The four official MNIST files: their names, which split each belongs to, and their checksums."""

from __future__ import annotations

from pathlib import Path

#: split -> (images file, labels file), named as published, without ``.gz``.
FILES: dict[str, tuple[str, str]] = {
    "training": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "testing": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLITS = tuple(FILES)
ALL_FILES = tuple(name for pair in FILES.values() for name in pair)

#: sha256 of each official file's DECOMPRESSED content (so a gzipped and a plain copy agree).
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Where this repository's checkout finds a copy, relative to its root.
SHARED_COPY = "../shared/data/mnist"


def locate(configured: Path) -> Path:
    """``configured``, unless it lacks the official files and this checkout's shared copy has them.

    So that ``make up``, ``make train`` and ``export-png`` work offline in a checkout that has the
    shared copy beside it; where neither has the files, ``configured`` is where they get downloaded.
    """
    shared = Path(SHARED_COPY)
    if not _has_files(configured) and _has_files(shared):
        return shared.resolve()
    return configured


def _has_files(directory: Path) -> bool:
    return all(any(directory.glob(f"{name}*")) for name in ALL_FILES)


def official_name(path: Path) -> str | None:
    """The official name ``path`` carries (``.gz`` or not), or None for any other file."""
    name = path.name.removesuffix(".gz")
    return name if name in SHA256 else None


def missing_files_message(data_dir: Path, missing: list[str], reason: str) -> str:
    """One line that says which files are missing, why they were not fetched, and where to put them."""
    wanted = ", ".join(f"{name}.gz" for name in missing)
    return (
        f"MNIST file(s) {wanted} not found in {data_dir.resolve()} ({reason}); put the official files "
        f"({', '.join(ALL_FILES)}, gzipped or not) in that directory, or set MNIST_DATA_DIR (or data_path) "
        f"to a directory that has them, such as this repository's shared copy {SHARED_COPY}"
    )
