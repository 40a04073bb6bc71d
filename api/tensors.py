"""What the TF Serving and KServe routes share: the model as live workers serve it, images from
tensors, and one queued job that answers them.

Both protocols describe the tensors of the model the workers serve (``inferq.model_spec``, from
their heartbeats) and go through the same queue as ``/recognize``: a request is one job, batched
with everyone else's. Pixel values are
raw intensities 0..255, as the workers' model takes them; anything else is refused here, before
anything is queued, with a 400 that names what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import numpy as np

from api.errors import ApiError, unavailable
from api.runtime import runtime
from api.scheduling import Scheduling
from inferq import model_contract as contract
from inferq.jobs import FAILED
from inferq.messages import ImageResult
from inferq.model_spec import ModelSpec, TensorSpec

#: What a worker's result for one image calls each output.
_RESULT_KEYS = {contract.SIGNATURE_LABELS: "label", contract.SIGNATURE_PROBABILITIES: "probabilities"}
_IMAGE_SHAPES = ((contract.N_INPUT,), (contract.IMAGE_SIDE, contract.IMAGE_SIDE))
_KINDS = {"U": "text", "b": "true/false", "O": "null, objects, or numbers too large"}


@dataclasses.dataclass(frozen=True)
class Served:
    """The model as the live workers serve it, at the version a request named, else the newest."""

    spec: ModelSpec
    versions: list[int]
    #: Whether the request named the version: then no other version may answer it.
    addressed: bool

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def input(self) -> TensorSpec:
        """The model's one input: images, as the workers take them."""
        return self.spec.inputs[0]

    def output(self, name: object) -> TensorSpec:
        found = self.spec.output(name) if isinstance(name, str) else None
        if found is None:
            raise ApiError(400, f"model {self.name!r} version {self.version} has no output {name!r}; it has "
                                + ", ".join(repr(tensor.name) for tensor in self.spec.outputs))
        return found


def served_model(name: str, version: int | None) -> Served:
    """The model ``name`` at ``version`` (None: the newest), as live workers' heartbeats describe it."""
    rt = runtime()
    if name != rt.settings.model_name:
        raise ApiError(404, f"no model {name!r}: this server serves {rt.settings.model_name!r}")
    workers = [worker for worker in rt.workers.live() if worker.model_version is not None]
    if not workers:
        raise unavailable(f"no live worker serves model {name!r} yet")
    versions = sorted({worker.model_version for worker in workers})
    if version is not None and version not in versions:
        raise ApiError(404, f"model {name!r} version {version} is not served; served: "
                            + ", ".join(map(str, versions)))
    chosen = versions[-1] if version is None else version
    spec = next(worker.spec for worker in workers if worker.model_version == chosen and worker.spec)
    return Served(dataclasses.replace(spec, name=name), versions, version is not None)


def json_object(raw: bytes, what: str) -> dict:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
        raise ApiError(400, f"{what} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"{what} must be a JSON object")
    return body


def images(values: object, what: str) -> np.ndarray:
    """Nested lists of pixel values, ``[N, 784]`` or ``[N, 28, 28]``, as uint8 ``[N, 784]``."""
    return pixels(numbers(values, what), what)


def numbers(values: object, what: str) -> np.ndarray:
    """JSON lists of numbers as an array; ragged lists, text, booleans, nulls and objects refused."""
    try:
        array = np.asarray(values)
    except ValueError:
        raise ApiError(400, f"{what}: lists of different lengths, or nested too deep") from None
    if array.dtype.kind not in "iuf":
        raise ApiError(400, f"{what}: pixel values must be numbers 0..255, got "
                            + _KINDS.get(array.dtype.kind, str(array.dtype)))
    return array


def pixels(array: np.ndarray, what: str) -> np.ndarray:
    """Images ``[N, 784]`` or ``[N, 28, 28]`` of raw intensities as uint8 ``[N, 784]``, rounded."""
    if array.shape[1:] not in _IMAGE_SHAPES:
        raise ApiError(400, f"{what}: shape {list(array.shape)}, not [N, 784] or [N, 28, 28] "
                            "(N images of 28x28 pixels)")
    count, limit = len(array), runtime().settings.max_images_per_request
    if not count:
        raise ApiError(400, f"{what}: no images")
    if count > limit:
        raise ApiError(400, f"{what}: {count} images, more than the {limit} allowed in one request")
    outside = ~((array >= 0) & (array <= 255))  # NaN compares false: outside too
    if outside.any():
        where = [int(index) for index in np.argwhere(outside)[0]]
        raise ApiError(400, f"{what}: pixel values are raw intensities 0..255, got {array[tuple(where)].item()!r} "
                            f"at {where}")
    return np.rint(array).astype(np.uint8).reshape(count, contract.N_INPUT)


@dataclasses.dataclass(frozen=True)
class Answer:
    """The version that answered, and for each output asked for, its value for each image."""

    version: int
    values: dict[str, list]


def infer(images: np.ndarray, served: Served, outputs: Sequence[TensorSpec], scheduling: Scheduling) -> Answer:
    """Queue uint8 ``[N, 784]`` images as one job, as ``/recognize`` does, and wait for the answer."""
    rt = runtime()
    submitted = rt.queue.submit([""] * len(images), images.tobytes(), reply=True, priority=scheduling.priority,
                                timeout_s=scheduling.timeout_s)
    rt.metrics.images_accepted.inc(len(images))
    outcome = rt.queue.wait(submitted)
    if outcome.status == FAILED:
        raise ApiError(500, f"recognition failed: {outcome.error}", job_id=submitted.job_id)
    results: list[ImageResult] = outcome.results or []
    version = results[0]["model_version"]
    # The queue does not route by version, so while workers move to a new one another may answer.
    if served.addressed and version != served.version:
        raise unavailable(f"version {served.version} was asked for but version {version} answered: the "
                          "workers are changing versions; try again")
    values = {}
    for tensor in outputs:
        column = [result[_RESULT_KEYS[tensor.name]] for result in results]
        if None in column:
            raise unavailable(f"model version {version} answered without {tensor.name!r}: the served model "
                              "changed; try again")
        values[tensor.name] = column
    return Answer(version, values)
