"""``python -m api.grpc.tfserving.protos.generate``: TF Serving's messages and services as modules of
this package, and the descriptor set they are made from.

TensorFlow Serving's protos (``tensorflow_serving/apis/*.proto``) import TensorFlow's
(``tensorflow/core/framework/tensor.proto``, ...). Neither wheel ships the .proto files, only the
modules protoc made of them, each holding its file's descriptor. Those descriptors, taken from the
pinned tensorflow-serving-api and TensorFlow (the test extra) and their imports, are the source
here: written as one ``FileDescriptorSet`` (``SET``, which ``grpcurl -protoset`` reads too), and
given to grpcio-tools' protoc (``--descriptor_set_in``), so that the modules hold the very
descriptors the wheels' modules hold. Protobuf's default pool takes a file twice only where both
are the same: a process may import TensorFlow, tensorflow-serving-api's stubs and these modules
together (the tests do).

The one edit: protoc writes imports (a public import's ``import *`` too) of ``tensorflow.*``,
``tensorflow_serving.*`` and ``xla.*`` modules, and names its own module so; both become this
package's, so that nothing imports the ``tensorflow`` package in the API process. Only the
services' ``*_pb2_grpc`` modules are kept. ``tests/contracts/test_tfserving_protos.py`` builds the
set and the modules again and fails on any difference.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
PACKAGE = "api.grpc.tfserving.protos"
SET = HERE / "tfserving.protoset"
#: The services served, by the module that defines each; the set holds them and what they import.
ROOTS = ("tensorflow_serving.apis.prediction_service_pb2", "tensorflow_serving.apis.model_service_pb2")
#: Files of the set that come with protobuf itself (``google.protobuf.*_pb2``): not generated.
WELL_KNOWN = "google/protobuf/"
_FOREIGN = r"(?:tensorflow|tensorflow_serving|xla)(?:\.\w+)*"
_IMPORT = re.compile(rf"^from ({_FOREIGN}) import ", re.M)
_BUILT_AS = re.compile(rf"(_builder\.BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')({_FOREIGN}\.\w+_pb2)'")


def descriptor_set() -> bytes:
    """The installed tensorflow-serving-api's services and every file they import, dependencies first,
    as a serialized ``FileDescriptorSet`` (importing TensorFlow: only ever here, at generation)."""
    import importlib

    from google.protobuf import descriptor_pb2

    files: dict[str, object] = {}

    def add(file) -> None:
        if file.name in files:
            return
        for dependency in file.dependencies:
            add(dependency)
        files[file.name] = file

    for root in ROOTS:
        add(importlib.import_module(root).DESCRIPTOR)
    made = descriptor_pb2.FileDescriptorSet()
    for file in files.values():
        made.file.add().ParseFromString(file.serialized_pb)
    return made.SerializeToString(deterministic=True)


def generate(out: Path, descriptors: Path = SET) -> list[Path]:
    """Write the modules made from ``descriptors`` into ``out`` (a package tree); the paths written."""
    from google.protobuf import descriptor_pb2

    made_set = descriptor_pb2.FileDescriptorSet.FromString(descriptors.read_bytes())
    names = [file.name for file in made_set.file if not file.name.startswith(WELL_KNOWN)]
    with_services = {file.name for file in made_set.file if file.service}
    with tempfile.TemporaryDirectory() as raw:
        # grpcio-tools' protoc in a process of its own, as api.grpc.protos.generate runs it.
        args = [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={descriptors}",
                f"--python_out={raw}", f"--grpc_python_out={raw}", *names]
        ran = subprocess.run(args, capture_output=True, text=True)
        if ran.returncode != 0:
            raise SystemExit(f"protoc failed: {' '.join(args)}\n{ran.stderr}")
        written = []
        for name in names:
            stem = name.removesuffix(".proto")
            kept = [f"{stem}_pb2.py"] + ([f"{stem}_pb2_grpc.py"] if name in with_services else [])
            for module in kept:
                text = _IMPORT.sub(rf"from {PACKAGE}.\1 import ", (Path(raw) / module).read_text())
                text = _BUILT_AS.sub(rf"\1{PACKAGE}.\2'", text)
                target = out / module
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                written.append(target)
        for folder in sorted({path.parent for path in written}):
            while folder != out:  # each folder a package, for setuptools' find
                (folder / "__init__.py").touch()
                folder = folder.parent
        return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the modules (default: this package)")
    parser.add_argument("--keep-set", action="store_true",
                        help="generate from the committed descriptor set, without building it again")
    args = parser.parse_args(argv)
    if not args.keep_set:
        SET.write_bytes(descriptor_set())
        print(SET, file=sys.stderr)
    for path in generate(args.out):
        print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
