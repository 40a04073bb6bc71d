"""What a SavedModel says it serves: the meta graph to load, and its signature's tensors as specs.

The meta graph tagged ``serve`` is the one loaded (TF Serving's tag, the one ``tf.saved_model.save``
and Keras' ``model.export`` write), else the one tagged ``model`` (the original Go server's). A
signature's inputs and outputs become :class:`~inferq.model_spec.TensorSpec` s, sorted by name; a
graph with no signature at all but the Go server's tensors ``inputdata`` and ``inference`` is
described as that server used it, raw pixels in and labels out.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import saved_model_pb2

from inferq import mnist_contract as contract
from inferq.dtypes import UnknownDType
from inferq.dtypes import dtype as known_dtype
from inferq.model_spec import ANY, TensorSpec
from inferq.repository import SAVED_MODEL_FILE

#: The meta graph tags tried, in order: TF Serving's, then the original Go server's.
TAGS = (tf.saved_model.SERVING, contract.TAG)


class ModelLoadError(Exception):
    """A version directory that does not hold a model inferq can serve."""


def meta_graph_tag(path: str) -> str:
    """The tag of the meta graph to load, read from saved_model.pb (the loader only fails on a missing one)."""
    try:
        saved_model = saved_model_pb2.SavedModel.FromString((Path(path) / SAVED_MODEL_FILE).read_bytes())
    except (OSError, DecodeError) as exc:
        raise ModelLoadError(f"{path}: no readable {SAVED_MODEL_FILE}: {exc}") from exc
    tag_sets = [sorted(meta_graph.meta_info_def.tags) for meta_graph in saved_model.meta_graphs]
    for tag in TAGS:
        if [tag] in tag_sets:
            return tag
    raise ModelLoadError(f"{path}: no meta graph tagged {' or '.join(map(repr, TAGS))}; its tag sets: {tag_sets}")


def served_tensors(meta_graph: object, graph: tf.Graph,
                    signature_name: str) -> tuple[str | None, tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The signature's name and its inputs and outputs, each sorted by name."""
    # Keys starting "__" are TensorFlow's own (``__saved_model_init_op``), not signatures to serve.
    signatures = {key: value for key, value in meta_graph.signature_def.items()  # type: ignore[attr-defined]
                  if not key.startswith("__")}
    if signature_name in signatures:
        signature = signatures[signature_name]
        inputs = tuple(_spec(key, signature.inputs[key], graph, is_input=True) for key in sorted(signature.inputs))
        outputs = tuple(_spec(key, signature.outputs[key], graph, is_input=False)
                        for key in sorted(signature.outputs))
        if not inputs or not outputs:
            raise ValueError(f"signature {signature_name!r} has no {'inputs' if not inputs else 'outputs'}")
        return signature_name, inputs, outputs
    if not signatures and _has_go_server_tensors(graph):
        return None, (_graph_spec(contract.SIGNATURE_INPUT, graph, contract.INPUT_TENSOR, is_input=True),), \
            (_graph_spec(contract.SIGNATURE_LABELS, graph, contract.LABELS_TENSOR, is_input=False),)
    have = ", ".join(map(repr, sorted(signatures))) or "none (nor the Go server's inputdata and inference tensors)"
    raise ValueError(f"no signature {signature_name!r}; the signatures it has: {have}")


def _has_go_server_tensors(graph: tf.Graph) -> bool:
    names = {op.name for op in graph.get_operations()}
    return contract.INPUT_TENSOR in names and contract.LABELS_TENSOR in names


def _spec(name: str, info: object, graph: tf.Graph, *, is_input: bool) -> TensorSpec:
    """A signature's tensor: its type and shape as the signature gives them, else as the graph does."""
    if info.WhichOneof("encoding") != "name":  # type: ignore[attr-defined]
        raise ValueError(f"tensor {name!r} is sparse or composite; inferq serves dense tensors only")
    tensor = graph.get_tensor_by_name(info.name)  # type: ignore[attr-defined]
    shape = tf.TensorShape(info.tensor_shape)  # type: ignore[attr-defined]
    if shape.rank is None:
        shape = tensor.shape
    type_name = tf.dtypes.as_dtype(info.dtype).name  # type: ignore[attr-defined]
    return _tensor_spec(name, type_name, shape, info.name, is_input=is_input)  # type: ignore[attr-defined]


def _graph_spec(name: str, graph: tf.Graph, op_name: str, *, is_input: bool) -> TensorSpec:
    tensor = graph.get_tensor_by_name(f"{op_name}:0")
    return _tensor_spec(name, tensor.dtype.name, tensor.shape, tensor.name, is_input=is_input)


def _tensor_spec(name: str, type_name: str, shape: tf.TensorShape, tensor_name: str, *,
                 is_input: bool) -> TensorSpec:
    """The spec of a tensor; an output of unknown rank gets shape () until the test call shows its rank."""
    try:
        known_dtype(type_name)
    except UnknownDType as exc:
        raise ValueError(f"tensor {name!r}: {exc}") from None
    if shape.rank is None and is_input:
        raise ValueError(f"input {name!r} has no known rank; inferq needs at least its batch dimension")
    dims = shape.as_list() if shape.rank is not None else []
    return TensorSpec(name, type_name, tuple(ANY if size is None else size for size in dims), tensor_name)
