"""The Open Inference Protocol's (KServe v2's) operations, whatever carries them: HTTP
(``api.kserve.routes``) or gRPC (``api.grpc.servicer``).

Each answer is the protocol's message as a dict, field names as both carriers spell them, and each
refusal an :class:`api.errors.ApiError` with its HTTP status, which the gRPC front end maps to a
status code: a front end only moves bytes and names, so both say the same thing the same way.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata

import redis

from api.errors import ApiError
from api.kserve.codec import decode_inputs, parameters_of, requested_outputs
from api.kserve.triton_config import IndexEntry, model_config, repository_index
from api.queue import dispatch as tensors
from api.queue.dispatch import ModelOutputs, served_model
from api.queue.scheduling import Scheduling
from api.runtime import runtime
from inferq.model_spec import TensorSpec
from inferq.worker_registry import served_versions

EXTENSIONS = ["binary_tensor_data", "schedule_policy", "model_configuration", "model_repository"]
PLATFORM = "tensorflow_savedmodel"


def server_metadata() -> dict:
    return {"name": "inferq", "version": importlib.metadata.version("inferq"), "extensions": EXTENSIONS}


def not_ready(name: str, version: int | None = None) -> ApiError | None:
    """Why model ``name`` (at ``version``) cannot answer now, or None when a live worker serves it."""
    try:
        served = served_model(name, version)
        live = live_versions().get(name, set())
    except ApiError as error:
        return error
    except redis.RedisError:
        return ApiError(503, "the broker (Redis) does not answer", reason="broker")
    if served.version not in live:
        return ApiError(400, f"no live worker serves model {name!r} version {served.version}")
    return None


def model_metadata(name: str, version: int | None = None) -> dict:
    served = served_model(name, version)
    return {
        "name": name,
        "versions": [str(served_version) for served_version in served.versions],
        "platform": PLATFORM,
        "inputs": [_metadata(tensor) for tensor in served.spec.inputs],
        "outputs": [_metadata(tensor) for tensor in served.spec.outputs],
    }


def _metadata(tensor: TensorSpec) -> dict:
    return {"name": tensor.name, "datatype": tensor.type.kserve, "shape": list(tensor.shape)}


def model_configuration(name: str, version: int | None = None) -> dict:
    """Triton's ``ModelConfig`` of the model as served (``api.kserve.triton_config``)."""
    spec = served_model(name, version).spec
    settings = runtime().settings
    return model_config(spec, spec.config.batch_size_or(settings.max_batch_size),
                        spec.config.batch_wait_ms_or(settings.max_batch_wait_ms))


def repository(*, ready_only: bool) -> list[dict]:
    """The repository index: every model version, and whether it can answer."""
    live = live_versions()
    entries = [IndexEntry(name, spec.version, spec.version in live.get(name, set()),
                          "" if spec.version in live.get(name, set()) else "no live worker serves it")
               for name, specs in runtime().models.all().items() for spec in specs]
    return repository_index(entries, ready_only=ready_only)


def live_versions() -> dict[str, set[int]]:
    return served_versions(runtime().workers.live())


@dataclasses.dataclass(frozen=True)
class InferRequest:
    """A decoded inference request: the model, its inputs checked against its signature, the outputs
    asked for (each with whether the client wants it as binary data) and the request's parameters."""

    name: str
    served: tensors.Served
    inputs: dict
    wanted: list[tuple[TensorSpec, bool]]
    parameters: dict


def decode_request(name: str, version: int | None, body: dict, binary: bytes) -> InferRequest:
    """``body`` is the request as KServe v2's JSON has it (``inputs``, ``outputs``, ``parameters``),
    each binary input's data in ``binary`` at its ``binary_data_size``, in the order listed."""
    served = served_model(name, version)
    inputs = decode_inputs(body.get("inputs"), binary, served.spec, max_items=runtime().settings.max_images_per_request)
    return InferRequest(name, served, inputs, requested_outputs(body, served.spec), parameters_of(body, "the request"))


def infer(request: InferRequest, scheduling: Scheduling) -> ModelOutputs:
    """Queue the request as one job, and wait for its answer (``api.queue.dispatch.infer``)."""
    return tensors.infer(request.served, request.inputs, [tensor for tensor, _ in request.wanted], scheduling)
