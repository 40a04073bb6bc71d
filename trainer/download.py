"""Fetching missing official MNIST files from the usual mirrors, checksum-verified and written atomically.

The network is reached only through ``fetch_url``; tests pass their own ``fetch`` (or replace this
one) so that no test downloads anything.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from trainer import mnist_files
from trainer.errors import TrainerError

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
TIMEOUT_S = 60.0

Fetch = Callable[[str], bytes]


def fetch_url(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return response.read()


def download_files(
    data_dir: Path, names: Sequence[str], *, fetch: Fetch | None = None, mirrors: Sequence[str] = MIRRORS
) -> list[Path]:
    """Fetch ``<mirror><name>.gz`` for each official ``name`` into ``data_dir``, trying the mirrors in
    turn; a file is written (atomically) only once its decompressed content has the official sha256.

    Raises TrainerError saying where to put the files by hand when a file cannot be had.
    """
    fetch = fetch or fetch_url
    written = []
    for position, name in enumerate(names):
        failures = []
        for mirror in mirrors:
            url = f"{mirror}{name}.gz"
            print(f"Downloading {url}", flush=True)
            try:
                payload = fetch(url)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{url}: {exc}")
                continue
            problem = _check_payload(name, payload)
            if problem:
                failures.append(f"{url}: {problem}")
                continue
            written.append(_write_atomically(data_dir / f"{name}.gz", payload))
            break
        else:
            reason = "download failed: " + "; ".join(failures)
            raise TrainerError(mnist_files.missing_files_message(data_dir, list(names[position:]), reason))
    return written


def _check_payload(name: str, payload: bytes) -> str | None:
    try:
        content = gzip.decompress(payload)
    except (OSError, EOFError, zlib.error):
        return "not a complete gzip file"
    digest = hashlib.sha256(content).hexdigest()
    if digest != mnist_files.SHA256[name]:
        return f"content's sha256 {digest} is not the official {mnist_files.SHA256[name]}"
    return None


def _write_atomically(path: Path, payload: bytes) -> Path:
    # A reader (or a second trainer) sees the whole file or none: it is renamed into place once written.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(partial, 0o644)  # mkstemp's 0600 would hide the data from other users
            os.replace(partial, path)
        except BaseException:
            os.unlink(partial)
            raise
    except OSError as exc:
        raise TrainerError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
