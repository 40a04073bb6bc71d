"""Triton's model configuration (``GET /v2/models/<name>/config``) and model repository index
(``POST /v2/repository/index``) extensions, for tools that read them: perf_analyzer and
model-analyzer read a model's batch size, its tensors and its scheduler from the configuration.

The configuration is Triton's ``ModelConfig`` protobuf as its server writes it to JSON
(``ModelConfigToJson`` in triton-inference-server/core): field names as the .proto spells them, every
primitive field present, and the int64 fields (``dims``, ``versions``, ``max_queue_delay_microseconds``)
written as numbers, not as the strings protobuf's JSON would make of them. A batching model's ``dims``
leave out the batch dimension, which ``max_batch_size`` stands for (one value an item is ``dims`` [1]
with an empty ``reshape``, as Triton writes it); a model whose tensors do not all begin with a batch
dimension of any size has ``max_batch_size`` 0 and its full shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from inferq.model_config import VersionPolicy
from inferq.model_spec import ANY, ModelSpec, TensorSpec
from inferq.priorities import INTERACTIVE, PRIORITIES

PLATFORM = "tensorflow_savedmodel"
BACKEND = "tensorflow"
#: The file Triton's TensorFlow backend loads a SavedModel version from.
DEFAULT_MODEL_FILENAME = "model.savedmodel"


def model_config(spec: ModelSpec, max_batch_size: int, max_batch_wait_ms: float) -> dict:
    """The configuration of ``spec`` as served: batches of up to ``max_batch_size`` (the model's own
    limit, else the server's), each waiting up to ``max_batch_wait_ms`` for more work after its first."""
    batching = max_batch_size > 0 and all(tensor.shape and tensor.shape[0] == ANY
                                          for tensor in (*spec.inputs, *spec.outputs))
    config: dict[str, object] = {
        "name": spec.name,
        "platform": PLATFORM,
        "backend": BACKEND,
        "runtime": "",
        "version_policy": _version_policy(spec.config.version_policy),
        "max_batch_size": max_batch_size if batching else 0,
        "input": [_input(tensor, batching) for tensor in spec.inputs],
        "output": [_output(tensor, batching) for tensor in spec.outputs],
        "batch_input": [],
        "batch_output": [],
        "instance_group": [],
        "default_model_filename": DEFAULT_MODEL_FILENAME,
        "cc_model_filenames": {},
        "metric_tags": {},
        "parameters": {},
        "model_warmup": [],
        "model_transaction_policy": {"decoupled": False},
    }
    if batching:
        # inferq's priorities are Triton's levels 1 (interactive) and 2 (bulk); the KServe route's default
        # is interactive.
        config["dynamic_batching"] = {
            "preferred_batch_size": [],
            "max_queue_delay_microseconds": round(max_batch_wait_ms * 1000),
            "preserve_ordering": False,
            "priority_levels": len(PRIORITIES),
            "default_priority_level": PRIORITIES.index(INTERACTIVE) + 1,
            "priority_queue_policy": {},
        }
    return config


def _shape(tensor: TensorSpec, batching: bool) -> dict:
    """``dims``; for one value an item (shape [-1]), Triton's way: dims [1] and an empty ``reshape``,
    as it takes no empty dims."""
    dims = list(tensor.shape[1:] if batching else tensor.shape)
    return {"dims": dims} if dims else {"dims": [1], "reshape": {"shape": []}}


def _input(tensor: TensorSpec, batching: bool) -> dict:
    return {
        "name": tensor.name,
        "data_type": tensor.type.triton,
        "format": "FORMAT_NONE",
        **_shape(tensor, batching),
        "is_shape_tensor": False,
        "allow_ragged_batch": False,
        "optional": False,
        "is_non_linear_format_io": False,
    }


def _output(tensor: TensorSpec, batching: bool) -> dict:
    return {
        "name": tensor.name,
        "data_type": tensor.type.triton,
        **_shape(tensor, batching),
        "label_filename": "",
        "is_shape_tensor": False,
        "is_non_linear_format_io": False,
    }


def _version_policy(policy: VersionPolicy) -> dict:
    if policy.specific is not None:
        return {"specific": {"versions": list(policy.specific)}}
    return {"latest": {"num_versions": policy.latest or 1}}


@dataclasses.dataclass(frozen=True)
class IndexEntry:
    """A model of the repository at one version; ``version`` None where none of its versions is known."""

    name: str
    version: int | None
    ready: bool
    #: Why it is not ready ("no live worker serves it"), or "".
    reason: str = ""


def repository_index(entries: Iterable[IndexEntry], *, ready_only: bool = False) -> list[dict]:
    """The index's answer: each model version, ``READY`` or ``UNAVAILABLE`` and why, in name and then
    version order. ``ready_only``: the request's ``"ready": true``, only those that can answer now."""
    shown = []
    for entry in sorted(entries, key=lambda entry: (entry.name, entry.version if entry.version is not None else -1)):
        if ready_only and not entry.ready:
            continue
        item: dict[str, str] = {"name": entry.name}
        if entry.version is not None:  # optional in the protocol, and a string there
            item["version"] = str(entry.version)
        item["state"] = "READY" if entry.ready else "UNAVAILABLE"
        item["reason"] = "" if entry.ready else entry.reason
        shown.append(item)
    return shown
