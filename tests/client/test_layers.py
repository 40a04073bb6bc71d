"""The client's layers call down, never back: Client (and the run and CLI over it) use scoring, jobs
and the transport; none of those imports the facade. And the client imports nothing of the server's."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO

CLIENT = REPO / "inferq" / "client"
#: The facade and what is built on it: nothing below may import these.
UPPER = {"inferq.client", "inferq.client.client", "inferq.client.run", "inferq.client.cli"}
#: What the client may import of the repository beside itself: the file formats it reads.
SHARED = {"inferq.idx", "inferq.mnist_contract"}


def is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported(path) -> set[str]:
    """The modules ``path`` imports: ``from a import b`` is ``a.b`` where b is a module, else ``a``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if is_module(name) else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_module_below_the_facade_imports_it():
    for path in sorted(CLIENT.glob("*.py")):
        module = f"inferq.client.{path.stem}"
        if module in {*UPPER, "inferq.client.__init__", "inferq.client.__main__"}:
            continue
        assert not imported(path) & UPPER, f"{module} imports {sorted(imported(path) & UPPER)}"


def test_the_client_imports_only_itself_and_the_file_formats():
    for path in sorted(CLIENT.glob("*.py")):
        ours = {name for name in imported(path) if name.split(".")[0] in ("inferq", "api", "worker", "trainer")}
        outside = {name for name in ours if not name.startswith("inferq.client")} - SHARED
        assert not outside, f"{path.name} imports {sorted(outside)}"


def test_importing_the_client_and_its_cli_loads_no_server_library():
    probe = ("import sys, inferq.client, inferq.client.cli; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'flask', 'celery', 'kombu', 'redis', 'gunicorn', 'grpc', 'tensorflow', 'api', 'worker', 'trainer'}))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60,
                            check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout
