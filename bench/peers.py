"""The environment of the peer server a benchmark run measures inferq against: NVIDIA PyTriton.

PyTriton 0.7.0 needs numpy<2 and the project's venv has numpy 2, so it gets a venv of its own,
``.venv-pytriton`` (git-ignored), built from ``bench/pytriton-requirements.txt`` the first time a
run needs it and kept while that file is unchanged (its copy in the venv says what it was built
from). Building it downloads about 1 GB; where that fails (no registry, no wheel for the
platform), the run goes on without the peer and says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "bench" / "pytriton-requirements.txt"
SERVER = ROOT / "bench" / "pytriton_server.py"
VENV = ROOT / ".venv-pytriton"
#: The requirements the venv was built from, inside it.
BUILT_FROM = "requirements.txt"


class PeerUnavailable(RuntimeError):
    """The peer's venv could not be built: the run measures no peer."""


def python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def is_built(venv: Path = VENV, requirements: Path = REQUIREMENTS) -> bool:
    stamp = venv / BUILT_FROM
    return python(venv).is_file() and stamp.is_file() and stamp.read_text() == requirements.read_text()


def ensure_venv(venv: Path = VENV, requirements: Path = REQUIREMENTS) -> Path:
    """The peer's interpreter, its venv built first where it is missing or was built from other pins."""
    if is_built(venv, requirements):
        return python(venv)
    print(f"bench: building PyTriton's venv in {venv} from {requirements.name} (once; about 1 GB)", flush=True)
    try:
        if not python(venv).is_file():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(requirements)], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise PeerUnavailable(f"PyTriton's venv could not be built ({exc})") from exc
    (venv / BUILT_FROM).write_text(requirements.read_text())
    return python(venv)


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment PyTriton's server runs in. Triton starts its Python backend's stub, which links
    libpython3.x by name: the loader may find the system's (Debian's 3.11.2) while the stub runs the
    venv interpreter's standard library (3.11.7 here), which fails on start. The interpreter's own
    LIBDIR first makes them the same Python."""
    env = dict(os.environ if base is None else base, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [libdir, env.get("LD_LIBRARY_PATH")]))
    return env


def server_command(interpreter: Path, model_dir: str | Path, *, http_port: int, grpc_port: int, metrics_port: int,
                   max_batch_size: int, max_batch_wait_ms: float, name: str,
                   log_file: Path | None = None) -> list[str]:
    return [str(interpreter), str(SERVER), "--model-dir", str(Path(model_dir).resolve()), "--name", name,
            "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
            "--max-batch-size", str(max_batch_size), "--max-queue-delay-ms", f"{max_batch_wait_ms:g}",
            *(["--log-file", str(log_file)] if log_file is not None else [])]
