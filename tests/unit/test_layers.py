"""The import rule: protocols -> queue -> core, never back (docs/design.md, "The API's layout").

Read from the source with ``ast`` (every ``import`` and ``from ... import``, at any depth of a module,
so a late import inside a function counts too), and, for what an import costs, in a fresh interpreter.
Each rule is checked against a made-up violating import as well, so that it can fail.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROTOCOLS = ("api.images", "api.tfserving", "api.kserve", "api.grpc")
#: What each protocol may import of the others: the gRPC front end carries KServe's and TF Serving's.
CARRIES = {"api.grpc": ("api.kserve", "api.tfserving")}
#: Leaf modules a tool imports alone (the benchmark resizes images, a codec is fuzzed): they load no server.
CHEAP_LEAVES = ("api.images.decoding", "api.images.preprocessing", "api.images.arrays", "api.kserve.codec",
                "api.tfserving.codec", "api.errors")
SERVER_LIBRARIES = ("flask", "celery", "gunicorn", "granian")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The absolute names ``path`` imports: ``from a.b import c`` gives ``a.b`` and ``a.b.c``."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], *filter(None, [base])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def sources(*packages: str) -> dict[str, set[str]]:
    """Each module under ``packages`` (generated protobuf code aside) and what it imports."""
    modules = {}
    for package in packages:
        for path in sorted((REPO / package.replace(".", "/")).rglob("*.py")):
            if "protos" not in path.relative_to(REPO).parts:
                modules[module_name(path)] = imports_of(path)
    return modules


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(modules: Mapping[str, Iterable[str]], importer: str, forbidden: Iterable[str],
               allowed: Iterable[str] = ()) -> list[str]:
    """``module -> name`` for each import of a ``forbidden`` package by a module of ``importer``."""
    forbidden, allowed = tuple(forbidden), tuple(allowed)
    return sorted(f"{module} -> {name}" for module, names in modules.items() if within(module, importer)
                  for name in names
                  if any(within(name, bad) for bad in forbidden) and not any(within(name, ok) for ok in allowed))


def core_violations(modules: Mapping[str, Iterable[str]]) -> list[str]:
    return violations(modules, "inferq", ("api", "worker", "trainer", "launcher", "bench"))


def queue_violations(modules: Mapping[str, Iterable[str]]) -> list[str]:
    return violations(modules, "api.queue", PROTOCOLS)


def protocol_violations(modules: Mapping[str, Iterable[str]]) -> list[str]:
    return [found for protocol in PROTOCOLS
            for found in violations(modules, protocol, [other for other in PROTOCOLS if other != protocol],
                                    CARRIES.get(protocol, ()))]


def tensorflow_violations(modules: Mapping[str, Iterable[str]]) -> list[str]:
    return violations(modules, "api", ("tensorflow", "keras"))


RULES = [core_violations, queue_violations, protocol_violations, tensorflow_violations]
#: For each rule, a made-up module that breaks it.
BREAKS = {
    core_violations: {"inferq.jobs": {"api.errors"}},
    queue_violations: {"api.queue.dispatch": {"api.kserve.codec"}},
    protocol_violations: {"api.tfserving.routes": {"api.images.decoding"}},
    tensorflow_violations: {"api.images.decoding": {"tensorflow"}},
}


@pytest.fixture(scope="module")
def modules():
    found = sources("inferq", "api")
    # The packages the rules name exist: a rule over no modules would pass by itself.
    for package in ("inferq", "api.queue", *PROTOCOLS):
        assert any(within(name, package) for name in found), package
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_the_rule_holds(rule, modules):
    assert rule(modules) == []


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_the_rule_catches_a_violating_import(rule, modules):
    broken = {**modules}
    for module, names in BREAKS[rule].items():
        broken[module] = {*broken.get(module, set()), *names}
    assert rule(broken), rule.__name__


def test_grpc_may_import_the_protocols_it_carries_and_no_other():
    assert protocol_violations({"api.grpc.servicer": {"api.kserve.open_inference", "api.tfserving.codec"}}) == []
    assert protocol_violations({"api.grpc.servicer": {"api.images.decoding"}}) == [
        "api.grpc.servicer -> api.images.decoding"]
    # The carried protocols may not import gRPC back.
    assert protocol_violations({"api.kserve.routes": {"api.grpc.codec"}}) == ["api.kserve.routes -> api.grpc.codec"]


def test_relative_and_late_imports_are_read(tmp_path, monkeypatch):
    package = tmp_path / "api" / "queue"
    package.mkdir(parents=True)
    module = package / "late.py"
    module.write_text("from . import prefer\n\n"
                      "def f():\n    from ..kserve import codec\n    import api.images.decoding\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert imports_of(module) >= {"api.queue.prefer", "api.kserve.codec", "api.images.decoding"}
    assert queue_violations({module_name(module): imports_of(module)}) == [
        "api.queue.late -> api.images.decoding", "api.queue.late -> api.kserve", "api.queue.late -> api.kserve.codec"]


def loaded_by(module: str) -> list[str]:
    """The server libraries that importing ``module`` in a fresh interpreter loads."""
    script = (f"import json, sys, {module}\n"
              f"print(json.dumps(sorted(name for name in {SERVER_LIBRARIES!r} if name in sys.modules)))")
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", CHEAP_LEAVES)
def test_a_leaf_module_imports_without_the_servers(module):
    assert loaded_by(module) == []


def test_the_cheap_import_check_sees_a_server_library():
    # The app module builds the Flask app: the check must see what it loads.
    assert "flask" in loaded_by("api.app")
