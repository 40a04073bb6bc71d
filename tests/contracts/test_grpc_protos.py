"""api/grpc/protos: the committed modules are what grpcio-tools makes of the vendored .proto files,
and the installed runtimes (protobuf, grpcio) are ones those modules were made for. Each failure
names the versions and what to do."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from pathlib import Path

import grpc
import pytest
from google.protobuf import __version__ as protobuf_version
from google.protobuf import descriptor_pool

from api.grpc.protos import generate

PROTOS = Path(generate.__file__).parent
MODULES = ("grpc_service_pb2", "grpc_service_pb2_grpc", "model_config_pb2", "model_config_pb2_grpc")


def _generated_versions() -> tuple[str, str]:
    """The protobuf gencode version and the grpcio version the committed modules were made with."""
    messages = (PROTOS / "grpc_service_pb2.py").read_text()
    protobuf = ".".join(re.search(r"Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),", messages).groups())
    stubs = (PROTOS / "grpc_service_pb2_grpc.py").read_text()
    return protobuf, re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", stubs).group(1)


def test_regenerating_gives_the_committed_modules(tmp_path):
    tools = importlib.metadata.version("grpcio-tools")
    written = {path.name: path.read_text() for path in generate.generate(tmp_path)}
    assert sorted(written) == sorted(f"{name}.py" for name in MODULES)
    for name, text in written.items():
        assert text == (PROTOS / name).read_text(), (
            f"api/grpc/protos/{name} is not what grpcio-tools {tools} generates from the vendored .proto files "
            f"(generated for protobuf {_generated_versions()[0]}, grpcio {_generated_versions()[1]}): run "
            "`make protos` and commit the result, with pyproject's grpcio and protobuf pins moved to match")


def test_the_generated_modules_load_on_the_installed_runtimes():
    protobuf, grpcio = _generated_versions()
    try:
        for name in MODULES:
            importlib.import_module(f"api.grpc.protos.{name}")
    except Exception as error:  # protobuf's VersionError, grpc's RuntimeError
        pytest.fail(f"api/grpc/protos was generated for protobuf {protobuf} and grpcio {grpcio}; protobuf "
                    f"{protobuf_version} and grpcio {grpc.__version__} are installed, and loading it fails: {error}. "
                    "Run `make protos` with grpcio-tools matching the installed grpcio, or pin the runtimes back")
    assert int(protobuf_version.split(".")[0]) == int(protobuf.split(".")[0]), (
        f"generated for protobuf {protobuf}, protobuf {protobuf_version} is installed: another major version")


def test_the_pins_are_the_generated_modules_versions():
    protobuf, grpcio = _generated_versions()
    pyproject = (PROTOS.parents[2] / "pyproject.toml").read_text()
    pinned = dict(re.findall(r'"(grpcio|protobuf|grpcio-tools)==([\d.]+)"', pyproject))
    assert pinned["grpcio"] == pinned["grpcio-tools"] == grpcio, (pinned, grpcio)
    assert pinned["protobuf"].split(".")[0] == protobuf.split(".")[0], (pinned, protobuf)
    assert importlib.metadata.version("grpcio") == grpc.__version__ == pinned["grpcio"]


def test_the_descriptors_are_tritonclients_so_both_load_in_one_process():
    """The vendored .proto files are the commit tritonclient's modules come from: the same file
    names with other contents would clash in protobuf's default pool."""
    from tritonclient.grpc import service_pb2

    from api.grpc.protos import grpc_service_pb2

    assert grpc_service_pb2.ModelInferRequest is service_pb2.ModelInferRequest
    pool = descriptor_pool.Default()
    assert pool.FindFileByName("grpc_service.proto") is grpc_service_pb2.DESCRIPTOR
    for proto in ("grpc_service.proto", "model_config.proto"):
        assert "Copyright" in (PROTOS / proto).read_text().split("syntax")[0], f"{proto} keeps its licence header"
