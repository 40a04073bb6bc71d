"""``api.queue.dispatch.json_object``: request bodies read by orjson, and what orjson refuses read
by the json module as before, refusals worded as the json module words them."""

from __future__ import annotations

import json
import math

import pytest

from api.errors import ApiError
from api.queue.dispatch import json_object


@pytest.mark.parametrize("raw", [
    b'{"inputs": [{"name": "x", "data": [0.5, 1, -2e-3]}], "id": "a\\u00e9"}',
    b'{"a": 1, "a": 2}',
    b'{"n": 18446744073709551615}',
])
def test_reads_json_as_the_json_module_does(raw: bytes) -> None:
    assert json_object(raw, "the request") == json.loads(raw)


@pytest.mark.parametrize("raw", [
    b'{"n": 1180591620717411303424}',  # past 64 bits
    b'{"x": NaN, "y": -Infinity}',
    b'\xef\xbb\xbf{"x": 1}',  # a UTF-8 byte order mark
    '{"x": 1}'.encode("utf-16"),
    b'{"s": "\\ud800"}',  # a lone surrogate
])
def test_what_orjson_refuses_is_read_by_the_json_module(raw: bytes) -> None:
    read = json_object(raw, "the request")
    expected = json.loads(raw)
    assert read.keys() == expected.keys()
    for key, value in expected.items():
        assert read[key] == value or (isinstance(value, float) and math.isnan(value) and math.isnan(read[key]))


@pytest.mark.parametrize("raw", [b"{", b'{"a": }', b"\xff", b"[" * 100_000 + b"]" * 100_000])
def test_refusals_are_the_json_modules(raw: bytes) -> None:
    try:
        json.loads(raw)
    except (ValueError, RecursionError) as exc:
        expected = f"the request is not JSON: {exc}"
    with pytest.raises(ApiError) as refused:
        json_object(raw, "the request")
    assert refused.value.status == 400
    assert refused.value.message == expected


@pytest.mark.parametrize("raw", [b"[1]", b"1", b'"x"', b"null"])
def test_a_body_that_is_not_an_object_is_refused(raw: bytes) -> None:
    with pytest.raises(ApiError, match="must be a JSON object") as refused:
        json_object(raw, "the request")
    assert refused.value.status == 400
