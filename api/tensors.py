"""What the TF Serving and KServe routes share: the model as live workers serve it, images from
tensors, and one queued job that answers them.

Both protocols describe the model contract's tensors (``inferq.model_contract``) and go through the
same queue as ``/recognize``: a request is one job, batched with everyone else's. Pixel values are
raw intensities 0..255, as the workers' model takes them; anything else is refused here, before
anything is queued, with a 400 that names what is wrong.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from api.errors import ApiError, unavailable
from api.runtime import runtime
from inferq import model_contract as contract
from inferq.jobs import FAILED
from inferq.messages import ImageResult


@dataclasses.dataclass(frozen=True)
class Tensor:
    name: str
    #: The element type as KServe names it.
    datatype: str
    #: -1 where any number of images goes.
    shape: tuple[int, ...]


INPUT = Tensor(contract.SIGNATURE_INPUT, "FP32", (-1, contract.N_INPUT))
LABELS = Tensor(contract.SIGNATURE_LABELS, "INT64", (-1,))
PROBABILITIES = Tensor(contract.SIGNATURE_PROBABILITIES, "FP32", (-1, contract.N_CLASSES))

#: What a worker's result for one image calls each output.
_RESULT_KEYS = {LABELS.name: "label", PROBABILITIES.name: "probabilities"}
_IMAGE_SHAPES = ((contract.N_INPUT,), (contract.IMAGE_SIDE, contract.IMAGE_SIDE))
_KINDS = {"U": "text", "b": "true/false", "O": "null, objects, or numbers too large"}


@dataclasses.dataclass(frozen=True)
class Served:
    """The model as the live workers serve it, at the version a request named, else the newest."""

    name: str
    version: int
    versions: list[int]
    #: Whether the request named the version: then no other version may answer it.
    addressed: bool
    #: The graph's tensor names by contract name, for the tensors this version has.
    graph_names: dict[str, str]

    @property
    def outputs(self) -> list[Tensor]:
        """The seed's own model has labels only; ours add probabilities."""
        return [tensor for tensor in (LABELS, PROBABILITIES) if tensor.name in self.graph_names]

    def output(self, name: object) -> Tensor:
        for tensor in self.outputs:
            if tensor.name == name:
                return tensor
        raise ApiError(400, f"model {self.name!r} version {self.version} has no output {name!r}; it has "
                            + ", ".join(repr(tensor.name) for tensor in self.outputs))


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
    spec = next(worker.model for worker in workers if worker.model_version == chosen) or {}
    graph_names = {key: info.get("name", key)
                   for group in ("inputs", "outputs") for key, info in spec.get(group, {}).items()}
    return Served(name, chosen, versions, version is not None, graph_names)


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


def recognize(images: np.ndarray, served: Served, outputs: list[Tensor]) -> Answer:
    """Queue uint8 ``[N, 784]`` images as one job, as ``/recognize`` does, and wait for the answer."""
    rt = runtime()
    submitted = rt.queue.submit([""] * len(images), images.tobytes(), reply=True)
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
