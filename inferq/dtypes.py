"""The element types a model's tensors can have, as each protocol names them.

A model's signature gives TensorFlow's name (``float32``); the KServe v2 protocol, TensorFlow
Serving's metadata and Triton's model configuration each have their own. One row per type, here.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DType:
    #: TensorFlow's and NumPy's name.
    name: str
    #: KServe v2 / Open Inference Protocol ``datatype``.
    kserve: str
    #: TensorFlow Serving's ``DataType`` enum, as its JSON metadata spells it.
    tf_serving: str
    #: Triton's model configuration ``data_type``.
    triton: str


_TABLE = (
    DType("bool", "BOOL", "DT_BOOL", "TYPE_BOOL"),
    DType("uint8", "UINT8", "DT_UINT8", "TYPE_UINT8"),
    DType("uint16", "UINT16", "DT_UINT16", "TYPE_UINT16"),
    DType("uint32", "UINT32", "DT_UINT32", "TYPE_UINT32"),
    DType("uint64", "UINT64", "DT_UINT64", "TYPE_UINT64"),
    DType("int8", "INT8", "DT_INT8", "TYPE_INT8"),
    DType("int16", "INT16", "DT_INT16", "TYPE_INT16"),
    DType("int32", "INT32", "DT_INT32", "TYPE_INT32"),
    DType("int64", "INT64", "DT_INT64", "TYPE_INT64"),
    DType("float16", "FP16", "DT_HALF", "TYPE_FP16"),
    DType("float32", "FP32", "DT_FLOAT", "TYPE_FP32"),
    DType("float64", "FP64", "DT_DOUBLE", "TYPE_FP64"),
    DType("string", "BYTES", "DT_STRING", "TYPE_STRING"),
)

BY_NAME = {dtype.name: dtype for dtype in _TABLE}
#: The floating-point types, by name.
FLOATS = tuple(dtype.name for dtype in _TABLE if dtype.name.startswith("float"))
BY_KSERVE = {dtype.kserve: dtype for dtype in _TABLE}


class UnknownDType(ValueError):
    """A type name no row has."""


def dtype(name: str) -> DType:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownDType(f"no tensor type {name!r}; known: {', '.join(BY_NAME)}") from None
