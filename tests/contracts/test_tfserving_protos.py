"""api/grpc/tfserving/protos: the committed descriptor set is what the pinned tensorflow-serving-api
and TensorFlow carry, the committed modules are what grpcio-tools makes of it, and a process may
import TensorFlow, tensorflow-serving-api's stubs and these modules together, in either order. Each
failure names the versions and what to do."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from api.grpc.tfserving.protos import generate

PROTOS = Path(generate.__file__).parent
REPO = PROTOS.parents[3]
REMAKE = "run `make protos` and commit the result"


def _versions() -> str:
    import tensorflow as tf  # the cpu or the GPU build: either is the `tensorflow` module

    version = importlib.metadata.version
    return (f"tensorflow-serving-api {version('tensorflow-serving-api')}, TensorFlow {tf.__version__}, "
            f"grpcio-tools {version('grpcio-tools')}")


def _committed() -> dict[str, str]:
    return {str(path.relative_to(PROTOS)): path.read_text() for path in sorted(PROTOS.rglob("*_pb2*.py"))}


def test_the_descriptor_set_is_the_installed_wheels():
    assert generate.descriptor_set() == generate.SET.read_bytes(), (
        f"api/grpc/tfserving/protos/tfserving.protoset is not what {_versions()} carry: {REMAKE}")


def test_regenerating_gives_the_committed_modules(tmp_path):
    written = {str(path.relative_to(tmp_path)): path.read_text() for path in generate.generate(tmp_path)}
    assert sorted(written) == sorted(_committed()), f"other modules than the committed ones: {REMAKE}"
    for name, text in written.items():
        assert text == _committed()[name], f"{name} is not what {_versions()} generate: {REMAKE}"


def test_the_set_holds_the_services_and_everything_they_import():
    files = descriptor_pb2.FileDescriptorSet.FromString(generate.SET.read_bytes()).file
    names = [file.name for file in files]
    services = {service.name for file in files for service in file.service}
    assert services == {"PredictionService", "ModelService"}
    for index, file in enumerate(files):  # dependencies first, as protoc and grpcurl read them
        assert set(file.dependency) <= set(names[:index]), file.name


PROBE = """
import sys
def ours():
    from api.grpc.tfserving.protos.tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc, \\
        model_service_pb2_grpc, get_model_metadata_pb2
    return predict_pb2, get_model_metadata_pb2
def theirs():
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc, model_service_pb2_grpc, \\
        get_model_metadata_pb2
    return predict_pb2, get_model_metadata_pb2
first, second = (ours, theirs) if sys.argv[1] == "ours" else (theirs, ours)
a = first()
b = second()
(our_predict, our_metadata), (their_predict, their_metadata) = (a, b) if first is ours else (b, a)
assert our_predict.PredictRequest is their_predict.PredictRequest
assert our_metadata.SignatureDefMap is their_metadata.SignatureDefMap
import tensorflow as tf
request = our_predict.PredictRequest()
request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0]]))
assert tf.make_ndarray(request.inputs["x"]).tolist() == [[1.0, 2.0]]
print("ok")
"""


def test_tensorflow_its_serving_stubs_and_these_modules_load_in_one_process_either_order():
    # A fresh process for each order: which modules load first is what could clash.
    for first in ("ours", "theirs"):
        ran = subprocess.run([sys.executable, "-c", PROBE, first], cwd=REPO, capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *sys.path[1:]])),
                             timeout=120)
        assert ran.stdout.strip() == "ok", (first, ran.stderr[-3000:])
