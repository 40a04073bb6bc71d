"""KServe v2 (Open Inference Protocol) tensors to and from arrays, checked against the model's spec.

A request's ``inputs`` each name a model input, its ``datatype`` (exactly the model's: inferq does not
convert between types, so that what runs is what was sent) and ``shape``, with the values as JSON
``data`` (flat or nested in row-major order; BYTES as strings) or as binary data after the JSON header,
as Triton's binary tensor data extension has it: each binary input says its ``binary_data_size`` and the
inputs' data follow one another in the order they are listed. Binary values are little-endian in their
type's own size, BOOL one byte (0 or 1), BYTES each a 4-byte little-endian length and then the bytes.

Outputs are answered the same ways. A BYTES output asked for as JSON is sent as strings, as Triton's
HTTP server writes them (the bytes themselves, ``WriteDataToJson``); where they are not UTF-8, which a
JSON string cannot carry, that output is sent as binary data instead, whole and unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np

from api.errors import ApiError
from api.tensor_values import described, fit_shape, from_json, numpy_dtype, same_batch, shape_text, text
from inferq.dtypes import BY_KSERVE
from inferq.model_spec import ModelSpec, TensorSpec

_LENGTH = struct.Struct("<I")


def decode_inputs(inputs: object, binary: bytes, spec: ModelSpec, *, max_items: int) -> dict[str, np.ndarray]:
    """Every input of ``spec`` as an array of its type, all with the same batch size, 1 to ``max_items``;
    ``binary`` is what follows the JSON header."""
    expected = ", ".join(described(tensor, tensor.type.kserve) for tensor in spec.inputs)
    if not isinstance(inputs, list) or not all(isinstance(tensor, dict) for tensor in inputs):
        raise ApiError(400, f"'inputs' must be a list of tensors, one for each of the model's inputs: {expected}")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for sent in inputs:
        name = sent.get("name")
        tensor = spec.input(name) if isinstance(name, str) else None
        if tensor is None:
            raise ApiError(400, f"no input {name!r}; the model's inputs are {expected}")
        if name in arrays:
            raise ApiError(400, f"input {name!r} is sent twice")
        arrays[name], offset = _decode(sent, tensor, binary, offset, max_items)
    if offset < len(binary):
        raise ApiError(400, f"{len(binary)} bytes of binary data follow the JSON, but no input has a binary_data_size"
                       if not offset else f"{len(binary)} bytes of binary data follow the JSON, but the inputs' "
                                          f"binary_data_size add up to {offset}")
    missing = [tensor for tensor in spec.inputs if tensor.name not in arrays]
    if missing:
        raise ApiError(400, f"no input {described(missing[0], missing[0].type.kserve)} in the request; the model's "
                            f"inputs are {expected}, all of them needed")
    return same_batch(arrays, "the request")


def _decode(sent: dict, tensor: TensorSpec, binary: bytes, offset: int, max_items: int) -> tuple[np.ndarray, int]:
    what, datatype = f"input {tensor.name!r}", tensor.type.kserve
    if sent.get("datatype") != datatype:
        narrower = _exactly_widened(sent.get("datatype"), tensor)
        if narrower is None:
            raise ApiError(400, f"{what}: datatype {sent.get('datatype')!r}; the model takes {datatype} "
                                f"{shape_text(tensor.shape)} (or a narrower number type that converts to it exactly)")
        # Read as sent and kept so: the worker casts, and the narrower array is the smaller message.
        tensor, datatype = narrower, sent["datatype"]
    shape = sent.get("shape")
    if not isinstance(shape, list) or not all(type(size) is int and size >= 0 for size in shape):
        raise ApiError(400, f"{what}: 'shape' must be a list of sizes (whole numbers, 0 or more), got {shape!r}")
    shape = tuple(shape)
    fitted = fit_shape(shape, tensor, what, datatype, max_items)
    size = parameters_of(sent, what).get("binary_data_size")
    if size is not None:
        if "data" in sent:
            raise ApiError(400, f"{what}: both 'data' and a binary_data_size; send its values one way")
        if type(size) is not int or size < 0:
            raise ApiError(400, f"{what}: binary_data_size must be a number of bytes, got {size!r}")
        if offset + size > len(binary):
            raise ApiError(400, f"{what}: binary_data_size {size}, but {len(binary) - offset} of the {len(binary)} "
                                "bytes of binary data after the JSON are left for it")
        return _from_binary(binary[offset:offset + size], tensor, shape, what).reshape(fitted), offset + size
    if "data" not in sent:
        raise ApiError(400, f"{what}: no 'data', and no binary_data_size for binary data")
    values = from_json(sent["data"], tensor, what, datatype)
    if values.size != math.prod(shape):
        raise ApiError(400, f"{what}: shape {shape_text(shape)} holds {math.prod(shape)} values, its 'data' "
                            f"{values.size}")
    return values.reshape(fitted), offset


def _exactly_widened(sent: object, tensor: TensorSpec) -> TensorSpec | None:
    """``tensor`` as of the sent datatype, where every value of that type converts to the model's
    exactly (UINT8 pixels for an FP32 input); else None."""
    kind = BY_KSERVE.get(sent) if isinstance(sent, str) else None
    if kind is None or kind.name in ("bool", "string") or tensor.dtype in ("bool", "string"):
        return None
    if not np.can_cast(np.dtype(kind.name), np.dtype(tensor.dtype), casting="safe"):
        return None
    return dataclasses.replace(tensor, dtype=kind.name)


def _from_binary(chunk: bytes, tensor: TensorSpec, shape: tuple[int, ...], what: str) -> np.ndarray:
    dtype, datatype, count = numpy_dtype(tensor), tensor.type.kserve, math.prod(shape)
    if dtype.kind == "O":
        return _unpack_strings(chunk, count, what).reshape(shape)
    wire = np.dtype(np.uint8) if dtype.kind == "b" else dtype.newbyteorder("<")
    if len(chunk) != count * wire.itemsize:
        raise ApiError(400, f"{what}: shape {shape_text(shape)} of {datatype} is {count * wire.itemsize} bytes of "
                            f"binary data ({wire.itemsize} a value); binary_data_size says {len(chunk)}")
    values = np.frombuffer(chunk, wire)
    if dtype.kind == "b" and (values > 1).any():
        raise ApiError(400, f"{what}: BOOL binary data is one byte a value, 0 or 1; byte "
                            f"{int(np.argmax(values > 1))} is {int(values[values > 1][0])}")
    return values.astype(dtype).reshape(shape)


def _unpack_strings(chunk: bytes, count: int, what: str) -> np.ndarray:
    # Read into a list that grows with the data, not an array of the shape's size: a shape is only
    # declared (BYTES [1, 10^13] would be 80 TB of pointers), and the data runs out first.
    found: list[bytes] = []
    offset = 0
    for index in range(count):
        if offset + _LENGTH.size > len(chunk):
            raise ApiError(400, f"{what}: BYTES binary data holds {index} strings (each a 4-byte little-endian "
                                f"length, then its bytes); its shape needs {count}")
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += _LENGTH.size
        if offset + length > len(chunk):
            raise ApiError(400, f"{what}: BYTES binary data ends inside string {index} ({length} bytes long)")
        found.append(chunk[offset:offset + length])
        offset += length
    if offset != len(chunk):
        raise ApiError(400, f"{what}: BYTES binary data holds more than the {count} strings of its shape "
                            f"({len(chunk) - offset} bytes left over)")
    strings = np.empty(count, dtype=object)
    strings[:] = found
    return strings


def requested_outputs(body: dict, spec: ModelSpec) -> list[tuple[TensorSpec, bool]]:
    """The outputs asked for (all when none are named), each with whether to send it as binary data:
    the output's ``parameters.binary_data``, else the request's ``parameters.binary_data_output``."""
    binary = flag(parameters_of(body, "the request").get("binary_data_output", False), "binary_data_output")
    requested = body.get("outputs")
    if requested in (None, []):
        return [(tensor, binary) for tensor in spec.outputs]
    if not isinstance(requested, list) or not all(isinstance(output, dict) for output in requested):
        raise ApiError(400, "'outputs' must be a list of objects, each naming an output")
    wanted: list[tuple[TensorSpec, bool]] = []
    for output in requested:
        name = output.get("name")
        tensor = spec.output(name) if isinstance(name, str) else None
        if tensor is None:
            raise ApiError(400, f"model {spec.name!r} version {spec.version} has no output {name!r}; it has "
                                + ", ".join(described(tensor, tensor.type.kserve) for tensor in spec.outputs))
        if any(tensor is other for other, _ in wanted):
            raise ApiError(400, f"output {name!r} is asked for twice")
        wanted.append((tensor, flag(parameters_of(output, f"output {name!r}").get("binary_data", binary),
                                    "binary_data")))
    return wanted


def parameters_of(holder: dict, what: str) -> dict:
    """A request's, an input's or an output's ``parameters`` (an object; none: empty)."""
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ApiError(400, f"{what}: 'parameters' must be an object")
    return parameters


def flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {value!r}")
    return value


def encode_outputs(values: dict[str, object], wanted: list[tuple[TensorSpec, bool]]) -> tuple[list[dict], list[bytes]]:
    """The response's ``outputs``, and the binary data to follow the JSON header, output by output."""
    outputs, blobs = [], []
    for tensor, binary in wanted:
        array = np.asarray(values[tensor.name], dtype=numpy_dtype(tensor))
        output: dict[str, object] = {"name": tensor.name, "datatype": tensor.type.kserve, "shape": list(array.shape)}
        data = None if binary else _json_data(array)
        if data is None:
            blobs.append(_to_binary(array))
            output["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            output["data"] = data
        outputs.append(output)
    return outputs, blobs


def _json_data(array: np.ndarray) -> list | None:
    """The values, flat, as JSON has them; None for strings that are not all UTF-8."""
    if array.dtype.kind != "O":
        return array.ravel().tolist()
    strings = [text(value) for value in array.ravel()]
    return None if None in strings else strings


def _to_binary(array: np.ndarray) -> bytes:
    if array.dtype.kind == "O":
        strings = [value.encode() if isinstance(value, str) else bytes(value) for value in array.ravel()]
        return b"".join(_LENGTH.pack(len(value)) + value for value in strings)
    wire = np.dtype(np.uint8) if array.dtype.kind == "b" else array.dtype.newbyteorder("<")
    return array.astype(wire).tobytes()
