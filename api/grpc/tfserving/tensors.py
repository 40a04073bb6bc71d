"""TF Serving's ``TensorProto`` to and from arrays, checked against the model's spec as the REST
route checks its JSON (``api.tfserving.codec``, ``api.tensor_values``), with the REST route's messages.

A tensor's values come one of two ways, as ``tf.make_tensor_proto`` writes them:

- ``tensor_content``: the values' bytes, little-endian (what TensorFlow writes for numbers);
- the typed field of its dtype (``float_val`` for DT_FLOAT, ``int_val`` for DT_INT8 to DT_INT32 and
  DT_UINT8/16, ``string_val`` for DT_STRING, ``half_val`` holding DT_HALF's bits, ...): read as the
  REST route's JSON values, so a value out of the dtype's range is refused, not wrapped.

Its dtype must be the input's, or a narrower number type that converts to it exactly (DT_UINT8
pixels for a DT_FLOAT input), as the KServe routes take them; its shape is fitted as the REST route
fits a JSON value's (``api.tensor_values.fit_shape``). Where TensorFlow repeats a single typed value
to fill a larger shape, inferq refuses: one value is one value. Answers are ``tensor_content`` (strings:
``string_val``), which ``tf.make_ndarray`` reads.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from api.errors import ApiError
from api.grpc.tfserving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from api.tensor_values import fit_shape, from_json, same_batch, shape_text
from api.tfserving.codec import check_names
from inferq.dtypes import BY_NAME
from inferq.model_spec import ModelSpec, TensorSpec

#: Each type's typed values field (tensor.proto's comments say which holds which).
FIELDS = {
    "bool": "bool_val", "int8": "int_val", "int16": "int_val", "int32": "int_val", "int64": "int64_val",
    "uint8": "int_val", "uint16": "int_val", "uint32": "uint32_val", "uint64": "uint64_val",
    "float16": "half_val", "float32": "float_val", "float64": "double_val", "string": "string_val",
}
#: TF Serving's DataType enum's value for each type inferq serves, and back.
ENUM = {name: types_pb2.DataType.Value(dtype.tf_serving) for name, dtype in BY_NAME.items()}
BY_ENUM = {value: name for name, value in ENUM.items()}


def _dtype_name(value: int) -> str:
    return types_pb2.DataType.Name(value) if value in types_pb2.DataType.values() else f"dtype {value}"


def decode_inputs(inputs: Mapping[str, tensor_pb2.TensorProto], spec: ModelSpec,
                  max_items: int) -> dict[str, np.ndarray]:
    """``PredictRequest.inputs`` as one array for each of the model's inputs."""
    check_names(inputs, spec, "'inputs'")
    arrays = {}
    for tensor in spec.inputs:
        what = f"input {tensor.name!r}"
        array = array_of(inputs[tensor.name], tensor, what)
        arrays[tensor.name] = array.reshape(fit_shape(array.shape, tensor, what, tensor.dtype, max_items))
    return same_batch(arrays, "the request")


def array_of(proto: tensor_pb2.TensorProto, tensor: TensorSpec, what: str) -> np.ndarray:
    """``proto``'s values as an array of its own type (the input's, or one narrower), its own shape."""
    sent = _sent_type(proto.dtype, tensor, what)
    shape = _shape(proto.tensor_shape, what)
    field = FIELDS[sent.dtype]
    typed = getattr(proto, field)
    count = math.prod(shape)
    if proto.tensor_content:
        if typed:
            raise ApiError(400, f"{what}: both 'tensor_content' and '{field}'; send the values one way")
        return _from_content(proto.tensor_content, sent, shape, what)
    if len(typed) != count:
        raise ApiError(400, f"{what}: shape {shape_text(shape)} holds {count} values, its '{field}' {len(typed)}")
    if sent.dtype == "string":
        values = np.empty(count, dtype=object)
        values[:] = list(typed)
        return values.reshape(shape)
    cells = np.array(list(typed), dtype=object).reshape(shape)  # shaped, so that a refusal says where
    if sent.dtype == "float16":
        return from_json(cells, dataclasses.replace(sent, dtype="uint16"), what, "float16's bits").view(np.float16)
    # Labelled as the REST route labels them, so that a value refused is refused in the same words.
    return from_json(cells, sent, what, sent.dtype)


def _sent_type(value: int, tensor: TensorSpec, what: str) -> TensorSpec:
    """``tensor`` as of the sent dtype, where that is its own or converts to it exactly."""
    sent = BY_ENUM.get(value)
    if sent == tensor.dtype:
        return tensor
    numeric = sent is not None and "bool" not in (sent, tensor.dtype) and "string" not in (sent, tensor.dtype)
    if numeric and np.can_cast(np.dtype(sent), np.dtype(tensor.dtype), casting="safe"):
        # Kept as sent, as the KServe routes keep it: the worker casts, and the message is smaller.
        return dataclasses.replace(tensor, dtype=sent)
    raise ApiError(400, f"{what}: {_dtype_name(value)}; the model takes {tensor.type.tf_serving} "
                        f"{shape_text(tensor.shape)} (or a narrower number type that converts to it exactly)")


def _shape(shape: tensor_shape_pb2.TensorShapeProto, what: str) -> tuple[int, ...]:
    if shape.unknown_rank:
        raise ApiError(400, f"{what}: a shape of unknown rank; send the tensor's shape")
    sizes = tuple(dim.size for dim in shape.dim)
    if any(size < 0 for size in sizes):
        raise ApiError(400, f"{what}: shape {shape_text(sizes)}; a tensor's sizes are 0 or more")
    return sizes


def _from_content(content: bytes, sent: TensorSpec, shape: tuple[int, ...], what: str) -> np.ndarray:
    if sent.dtype == "string":
        raise ApiError(400, f"{what}: DT_STRING values go in 'string_val', not 'tensor_content'")
    dtype = np.dtype(sent.dtype).newbyteorder("<")
    count = math.prod(shape)
    if len(content) != count * dtype.itemsize:
        raise ApiError(400, f"{what}: shape {shape_text(shape)} of {sent.type.tf_serving} is "
                            f"{count * dtype.itemsize} bytes of 'tensor_content' ({dtype.itemsize} a value), "
                            f"not {len(content)}")
    values = np.frombuffer(content, dtype)
    if sent.dtype == "bool" and (values.view(np.uint8) > 1).any():
        raise ApiError(400, f"{what}: DT_BOOL 'tensor_content' is one byte a value, 0 or 1")
    return values.astype(dtype.newbyteorder("="), copy=False).reshape(shape)


def tensor_proto(array: np.ndarray, tensor: TensorSpec) -> tensor_pb2.TensorProto:
    """An output as TF Serving answers it: its dtype and shape, numbers as ``tensor_content``."""
    proto = tensor_pb2.TensorProto(dtype=ENUM[tensor.dtype], tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in array.shape]))
    if tensor.dtype == "string":
        proto.string_val.extend(value if isinstance(value, bytes) else str(value).encode() for value in array.ravel())
    else:
        proto.tensor_content = np.ascontiguousarray(array, np.dtype(tensor.dtype).newbyteorder("<")).tobytes()
    return proto
