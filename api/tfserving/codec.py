"""TensorFlow Serving's REST bodies to and from arrays, checked against the model's spec, as
https://www.tensorflow.org/tfx/serving/api_rest and its server (``json_tensor.cc``) have them.

- ``:predict`` row format, ``{"instances": [...]}``: one instance per item; for a model of one input
  each is its value (or ``{name: value}``), for more each is an object naming every input.
- ``:predict`` column format, ``{"inputs": ...}``: the value of a model of one input, or an object
  naming every input. Where TF Serving lets inputs differ in their first dimension, inferq takes it
  as the batch, the same for every input, as the row format has it.
- ``:classify``, ``{"examples": [{feature: value, ...}], "context": {...}}``: tf.Example features,
  each a value or a list of values, one for each of the model's inputs by name (``tensorflow_classify``).

Values must fit the input's type exactly (``api.tensor_values``); a string's bytes may be sent as
``{"b64": "..."}``. String outputs are sent as text where they are UTF-8 and as ``{"b64": "..."}``
where they are not, or where the output's name ends in ``_bytes`` (TF Serving's rule for binary).
"""

from __future__ import annotations

import base64

import numpy as np

from api.errors import ApiError
from api.tensor_values import described, fit_shape, from_json, same_batch, text
from inferq.model_spec import ModelSpec

#: TF Serving's suffix for outputs that hold bytes rather than text: always sent as base64.
BYTES_SUFFIX = "_bytes"


def _is_b64(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _names_inputs(value: object) -> bool:
    """Whether ``value`` is an object naming inputs, rather than a value ({"b64": ...} is a value)."""
    return isinstance(value, dict) and not _is_b64(value)


def _expected(spec: ModelSpec) -> str:
    return ", ".join(described(tensor, tensor.dtype) for tensor in spec.inputs)


def check_names(names: dict, spec: ModelSpec, what: str, noun: str = "input") -> None:
    unknown = [name for name in names if spec.input(name) is None]
    if unknown:
        raise ApiError(400, f"{what}: no input {unknown[0]!r}; the model's inputs are {_expected(spec)}")
    missing = [tensor.name for tensor in spec.inputs if tensor.name not in names]
    if missing:
        raise ApiError(400, f"{what}: no {noun} {missing[0]!r}; the model's inputs are {_expected(spec)}, "
                            "all of them needed")


def _arrays(columns: dict[str, object], spec: ModelSpec, max_items: int) -> dict[str, np.ndarray]:
    arrays = {}
    for tensor in spec.inputs:
        what = f"input {tensor.name!r}"
        array = from_json(columns[tensor.name], tensor, what, tensor.dtype, b64=True)
        arrays[tensor.name] = array.reshape(fit_shape(array.shape, tensor, what, tensor.dtype, max_items))
    return same_batch(arrays, "the request")


def _items(items: object, key: str, what: str, max_items: int) -> list:
    if not isinstance(items, list) or not items:
        raise ApiError(400, f"'{key}' must be a list of {what}, at least one")
    if len(items) > max_items:
        raise ApiError(400, f"'{key}': {len(items)} items, more than the {max_items} allowed in one request")
    return items


def decode_instances(instances: object, spec: ModelSpec, max_items: int) -> dict[str, np.ndarray]:
    """The row format's ``instances`` as one array for each of the model's inputs."""
    instances = _items(instances, "instances", "instances, one per item", max_items)
    named = len(spec.inputs) > 1 or _names_inputs(instances[0])
    columns: dict[str, list] = {tensor.name: [] for tensor in spec.inputs}
    for index, instance in enumerate(instances):
        if named != _names_inputs(instance):
            if len(spec.inputs) > 1:
                raise ApiError(400, f"instance {index} must be an object naming each of the model's inputs: "
                                    f"{_expected(spec)}")
            raise ApiError(400, f"instance {index} is {'a value' if named else 'an object naming inputs'}, instance 0 "
                                f"{'an object naming inputs' if named else 'a value'}; send every instance one way")
        if named:
            check_names(instance, spec, f"instance {index}")
            for name, column in columns.items():
                column.append(instance[name])
        else:
            columns[spec.inputs[0].name].append(instance)
    return _arrays(columns, spec, max_items)


def decode_columns(inputs: object, spec: ModelSpec, max_items: int) -> dict[str, np.ndarray]:
    """The column format's ``inputs`` as one array for each of the model's inputs."""
    if _names_inputs(inputs):
        check_names(inputs, spec, "'inputs'")
        return _arrays(inputs, spec, max_items)
    if len(spec.inputs) > 1:
        raise ApiError(400, f"'inputs' must be an object naming each of the model's inputs: {_expected(spec)}")
    return _arrays({spec.inputs[0].name: inputs}, spec, max_items)


def decode_examples(examples: object, spec: ModelSpec, max_items: int, *,
                    context: object = None) -> dict[str, np.ndarray]:
    """``:classify``'s ``examples`` (and ``context``, features every example shares) as one array for
    each of the model's inputs, the feature of its name."""
    examples = _items(examples, "examples", "examples (objects of features), one per item", max_items)
    shared = {} if context is None else context
    if not isinstance(shared, dict):
        raise ApiError(400, "'context' must be an object of features that every example shares")
    columns: dict[str, list] = {tensor.name: [] for tensor in spec.inputs}
    for index, example in enumerate(examples):
        if not isinstance(example, dict):
            raise ApiError(400, f"example {index} is not an object of features")
        both = [name for name in example if name in shared]
        if both:
            raise ApiError(400, f"example {index}: feature {both[0]!r} is in 'context' too; a feature is in one or "
                                "the other")
        features = {**shared, **example}
        check_names(features, spec, f"example {index}", "feature")
        for name, column in columns.items():
            value = features[name]
            if isinstance(value, list) and any(isinstance(element, list) for element in value):
                raise ApiError(400, f"example {index}: feature {name!r} holds lists; a feature is a value or a "
                                    "list of values")
            column.append(value if isinstance(value, list) else [value])  # a feature is a list of values
    return _arrays(columns, spec, max_items)


def predictions(values: dict[str, object]) -> list:
    """The row format's ``predictions``: each item's value where there is one output, else an object
    naming each output's value for the item."""
    columns = {name: _json(np.asarray(array), name) for name, array in values.items()}
    if len(columns) == 1:
        return next(iter(columns.values()))
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def columnar_outputs(values: dict[str, object]) -> object:
    """The column format's ``outputs``: the one output's value, else an object naming each output's."""
    columns = {name: _json(np.asarray(array), name) for name, array in values.items()}
    return next(iter(columns.values())) if len(columns) == 1 else columns


def _json(array: np.ndarray, name: str) -> object:
    """Nested lists of JSON values; strings as text, else (or for a ``_bytes`` output) base64."""
    if array.dtype.kind not in "OSU":
        return array.tolist()
    as_bytes = name.endswith(BYTES_SUFFIX)
    shown = np.empty(array.shape, dtype=object)
    for index, value in np.ndenumerate(array):
        shown[index] = _string(value, as_bytes)
    return shown.tolist()


def _string(value: object, as_bytes: bool) -> object:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    shown = None if as_bytes else text(raw)
    return shown if shown is not None else {"b64": base64.b64encode(raw).decode()}
