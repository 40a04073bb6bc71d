"""A virtual environment beside the project's, for a client whose pins the project's venv cannot take
(kserve 0.21 and tritonclient[grpc] declare protobuf<7; the project runs protobuf 7).

Built once with pip from the registries, under ``.run/side-venvs/`` (ignored by git, kept between
runs, removed by ``make clean``), named by a hash of its requirements and the interpreter: other
requirements, another venv. A build goes to a temporary folder renamed into place when pip has
finished, so a build cut short leaves nothing that looks built. The clients run in it as
subprocesses, on the same machine as the servers under test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import REPO

ROOT = REPO / ".run" / "side-venvs"
#: What pip says when it reaches no registry: its retries' connection errors, or, retries off, no
#: release at all of a requirement (a registry it reaches lists a pinned one's other releases).
UNREACHABLE = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution",
               "Name or service not known", "Connection refused", "ConnectTimeoutError", "Max retries exceeded",
               "(from versions: none)")
BUILD_TIMEOUT_S = 900


def side_python(*requirements: str) -> Path:
    """The python of a venv with ``requirements`` installed (pinned: ``name==version``); the test
    is skipped, saying why, only where pip reaches no registry."""
    key = hashlib.sha256("\n".join([sys.version, *sorted(requirements)]).encode()).hexdigest()[:16]
    venv = ROOT / key
    python = venv / "bin" / "python"
    if python.exists():
        return python
    ROOT.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=ROOT))
    try:
        # The interpreter under the project's venv, so that the side venv shares none of its packages.
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(building)], check=True, capture_output=True)
        # Console scripts' first lines name the build folder: the tests run ``python -m`` and scripts only.
        pip = subprocess.run([str(building / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                              "--no-input", *requirements], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                             env={**os.environ, "PIP_NO_INPUT": "1"})
        if pip.returncode != 0:
            output = pip.stdout + pip.stderr
            if any(sign in output for sign in UNREACHABLE):
                pytest.skip(f"pip reaches no package registry to install {' '.join(requirements)}: "
                            f"{output.strip().splitlines()[-1]}")
            raise AssertionError(f"pip install {' '.join(requirements)} failed:\n{output[-4000:]}")
        try:
            building.rename(venv)
        except OSError:  # another run built it meanwhile
            if not python.exists():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return python
