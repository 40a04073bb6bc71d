"""Publishing a model version atomically: written into ``MODEL_DIR/.tmp-<random>/``, then renamed to
``MODEL_DIR/<next version>/`` only when complete, so a worker never sees half a model.

Temporary directories are ignored by ``inferq.repository.versions`` (their names are not integers).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from inferq import repository

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def staging_dir(model_dir: Path) -> Iterator[Path]:
    """A new hidden directory in ``model_dir`` to write a version into; whatever is left of it when
    the block ends (everything, unless it was published) is removed."""
    model_dir.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=model_dir))
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def publish(staged: Path, model_dir: Path, stamp: Callable[[int], None]) -> Path:
    """Rename ``staged`` to ``model_dir/<highest version + 1>`` and return that path.

    ``stamp(version)`` runs before each rename attempt, to write what names the version into
    ``staged``; if another trainer takes the number first, the next one is stamped and tried.
    """
    staged.chmod(0o755)  # mkdtemp's 0700 would hide the version from workers running as another user
    version = _highest_version(model_dir) + 1
    while True:
        stamp(version)
        _fsync_tree(staged)
        target = repository.version_dir(model_dir, version)
        try:
            os.rename(staged, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise
            version += 1
            continue
        _fsync(model_dir)
        return target


def _highest_version(model_dir: Path) -> int:
    # Every integer name counts, complete or not, so a version number is never reused.
    return max((int(entry.name) for entry in model_dir.iterdir() if entry.name.isdigit()), default=0)


def _fsync_tree(root: Path) -> None:
    # Without this, a crash soon after the rename could leave a visible version with empty files.
    for directory, _, files in os.walk(root):
        for name in files:
            _fsync(Path(directory) / name)
        _fsync(Path(directory))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
