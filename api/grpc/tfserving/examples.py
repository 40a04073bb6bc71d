"""``ClassificationRequest.input``'s tf.Examples as the REST route's ``examples`` and ``context``
(``{feature: [values]}``), so that ``api.tfserving.codec.decode_examples`` checks them, and refuses
them, in the same words whichever way they came.

A ``bytes_list`` value is text where it is UTF-8, else ``{"b64": ...}``, as a REST client sends it.
"""

from __future__ import annotations

import base64

from api.errors import ApiError
from api.grpc.tfserving.protos.tensorflow.core.example import example_pb2, feature_pb2
from api.grpc.tfserving.protos.tensorflow_serving.apis import input_pb2
from api.tensor_values import text


def examples_of(given: input_pb2.Input) -> tuple[list[dict], dict | None]:
    """The examples, and the context they share (None: none)."""
    kind = given.WhichOneof("kind")
    if kind == "example_list":
        return [features(example) for example in given.example_list.examples], None
    if kind == "example_list_with_context":
        listed = given.example_list_with_context
        return [features(example) for example in listed.examples], features(listed.context)
    raise ApiError(400, "'input' holds no examples: send 'example_list' or 'example_list_with_context'")


def features(example: example_pb2.Example) -> dict[str, list]:
    return {name: _values(feature) for name, feature in example.features.feature.items()}


def _values(feature: feature_pb2.Feature) -> list:
    kind = feature.WhichOneof("kind")
    if kind is None:
        return []
    values = list(getattr(feature, kind).value)
    if kind != "bytes_list":
        return values
    return [shown if (shown := text(value)) is not None else {"b64": base64.b64encode(value).decode()}
            for value in values]
