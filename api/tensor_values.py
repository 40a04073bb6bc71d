"""JSON values and shapes checked against a model's tensor: what the KServe and TF Serving codecs share.

Values become an array of the tensor's own type only where every one of them fits it exactly: true
or false for a boolean, whole numbers within range for an integer type, numbers within range for a
float type (NaN and the infinities are floats), text for a string. Anything else is a 400 that names
the input, the value and where it is, before anything is queued: a value wrapped (300 as uint8 is 44)
or truncated (1.5 as int32 is 1) would give a wrong answer instead of an error.

Strings become bytes (UTF-8), as TensorFlow holds them: arrays of them are object arrays of bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from typing import NoReturn

import numpy as np

from api.errors import ApiError
from inferq.model_spec import ANY, TensorSpec

#: Each TensorFlow type's array type; strings are object arrays of bytes.
NUMPY = {name: np.dtype(name) for name in (
    "bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float16", "float32", "float64")}
NUMPY["string"] = np.dtype(object)

_EXPECTED = {"b": "true or false", "u": "a whole number", "i": "a whole number", "f": "a number", "O": "a string"}
_TYPES = {"b": {bool}, "u": {int, float}, "i": {int, float}, "f": {int, float}, "O": {str}}


def numpy_dtype(tensor: TensorSpec) -> np.dtype:
    return NUMPY[tensor.type.name]


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return f"[{', '.join(map(str, shape))}]"


def described(tensor: TensorSpec, datatype: str) -> str:
    """``'x' (FP32 [-1, 784])``: a tensor as errors name it."""
    return f"{tensor.name!r} ({datatype} {shape_text(tensor.shape)})"


def from_json(values: object, tensor: TensorSpec, what: str, datatype: str, *, b64: bool = False) -> np.ndarray:
    """JSON ``values`` (a value, or lists nested as deep as its dimensions) as an array of ``tensor``'s
    type, shaped by the nesting. ``b64``: ``{"b64": "..."}`` is a string's bytes, as TF Serving has it."""
    try:
        cells = np.array(values, dtype=object)
    except (ValueError, RecursionError):
        raise ApiError(400, f"{what}: lists nested too deep") from None
    flat = cells.ravel()
    kinds = set(map(type, flat))
    if list in kinds:
        raise ApiError(400, f"{what}: lists of different lengths at the same depth, or nested too deep; "
                            f"{datatype} values are a value, or lists of equal length nested evenly")
    dtype = NUMPY[tensor.type.name]
    allowed = _TYPES[dtype.kind] | ({dict} if b64 and dtype.kind == "O" else set())
    expected = _EXPECTED[dtype.kind] + (' or {"b64": "..."}' if b64 and dtype.kind == "O" else "")
    if not kinds <= allowed:
        _refuse(cells, lambda value: type(value) not in allowed, f"is not {expected} ({datatype})", what)
    if dtype.kind == "b":
        return cells.astype(bool)
    if dtype.kind in "iu":
        return _integers(cells, float in kinds, dtype, what, datatype)
    if dtype.kind == "f":
        return _floats(cells, dtype, what, datatype)
    return _strings(cells, what)


def _integers(cells: np.ndarray, has_floats: bool, dtype: np.dtype, what: str, datatype: str) -> np.ndarray:
    flat = cells.ravel()
    if has_floats and not all(value.is_integer() for value in flat if type(value) is float):
        _refuse(cells, lambda value: type(value) is float and not value.is_integer(),
                f"is not a whole number ({datatype})", what)
    info = np.iinfo(dtype)
    if flat.size and not (info.min <= min(flat) and max(flat) <= info.max):
        _refuse(cells, lambda value: not info.min <= value <= info.max,
                f"does not fit {datatype} ({info.min}..{info.max})", what)
    return cells.astype(dtype)


def _floats(cells: np.ndarray, dtype: np.dtype, what: str, datatype: str) -> np.ndarray:
    largest = float(np.finfo(dtype).max)
    try:
        numbers = cells.astype(np.float64)
        fits = not (np.isfinite(numbers) & (np.abs(numbers) > largest)).any()
    except OverflowError:  # an integer beyond any float
        fits = False
    if not fits:
        _refuse(cells, lambda value: value == value and abs(value) != math.inf and abs(value) > largest,
                f"is beyond {datatype}'s range (±{largest:.6g})", what)
    return numbers.astype(dtype)


def _strings(cells: np.ndarray, what: str) -> np.ndarray:
    strings = np.empty(cells.shape, dtype=object)
    out, flat = strings.reshape(-1), cells.ravel()
    for index, value in enumerate(flat):
        if type(value) is str:
            try:
                out[index] = value.encode()
            except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no UTF-8 for it
                _refuse_at(cells, index, "is not valid Unicode", what)
        elif set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                out[index] = base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                _refuse_at(cells, index, "is not base64", what)
        else:
            _refuse_at(cells, index, 'is not a string or {"b64": "..."}', what)
    return strings


def _refuse(cells: np.ndarray, bad: Callable[[object], bool], why: str, what: str) -> NoReturn:
    """Raise the 400 for the first value that is ``bad``, with where it is."""
    _refuse_at(cells, next(index for index, value in enumerate(cells.ravel()) if bad(value)), why, what)


def _refuse_at(cells: np.ndarray, index: int, why: str, what: str) -> NoReturn:
    flat = cells.ravel()
    where = [int(axis) for axis in np.unravel_index(index, cells.shape)] if cells.ndim else []
    raise ApiError(400, f"{what}: {_shown(flat[index])}{f' at {where}' if where else ''} {why}")


def _shown(value: object) -> str:
    try:
        text = json.dumps(value)
    except ValueError:  # a lone surrogate
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def fit_shape(shape: tuple[int, ...], tensor: TensorSpec, what: str, datatype: str, max_items: int) -> tuple[int, ...]:
    """The shape values of ``shape`` take for ``tensor``: ``shape`` where it matches the tensor's (any
    batch size, any size where the tensor has -1), else the tensor's own where only the layout of each
    item differs and not its number of values (images [N, 28, 28] for an input [-1, 784])."""
    expected = tensor.shape
    model_takes = f"the model takes {datatype} {shape_text(expected)} (-1: any size; the first dimension is the batch)"
    if not expected:
        raise ApiError(400, f"{what}: the model's input has no batch dimension (shape []); inferq cannot batch it")
    if not shape:
        raise ApiError(400, f"{what}: a single value, not a batch; {model_takes}")
    if shape[0] < 1:
        raise ApiError(400, f"{what}: no items (shape {shape_text(shape)}); {model_takes}")
    item = expected[1:]
    if len(shape) == len(expected) and all(size in (ANY, given) for size, given in zip(item, shape[1:], strict=True)):
        fitted = shape
    elif ANY not in item and math.prod(shape[1:]) == math.prod(item):
        fitted = (shape[0], *item)
    else:
        raise ApiError(400, f"{what}: shape {shape_text(shape)}; {model_takes}")
    if shape[0] > max_items:
        raise ApiError(400, f"{what}: {shape[0]} items, more than the {max_items} allowed in one request")
    return fitted


def same_batch(arrays: dict[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    """``arrays``, where every one has the same number of items: one row of each input per item."""
    sizes = {name: len(array) for name, array in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ApiError(400, f"{what}: inputs of different batch sizes ("
                            + ", ".join(f"{name!r}: {size}" for name, size in sizes.items())
                            + "); every input has one entry per item")
    return arrays


def text(value: bytes | str) -> str | None:
    """A string's bytes as text, or None where they are not UTF-8."""
    if isinstance(value, str):
        return str(value)  # numpy's str_ as a plain str, for any JSON writer
    try:
        return bytes(value).decode()
    except UnicodeDecodeError:
        return None
