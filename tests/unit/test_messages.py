"""Task messages, format v2: any model's jobs, each job's inputs as tensors by name, through JSON."""

import base64
import json

import numpy as np
import pytest

from inferq import messages
from inferq.dtypes import BY_NAME
from inferq.priorities import BULK, INTERACTIVE

NUMERIC = [name for name in BY_NAME if name != "string"]


def through_json(model: str, jobs: list[messages.JobInput]) -> tuple[str, list[messages.JobInput]]:
    return messages.decode(json.loads(json.dumps(messages.encode(model, jobs))))


def strings(*items: bytes, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array.reshape(shape or (len(items),))


def values_of(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Values that use the type's range: its extremes, and fractions for floats."""
    count = int(np.prod(shape))
    if dtype == "bool":
        return (np.arange(count) % 3 == 0).reshape(shape)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        cycle = np.array([info.min, info.max, 0, 1], dtype=dtype)
    else:
        info = np.finfo(dtype)
        cycle = np.array([info.min, info.max, -0.0, 1 / 3, info.tiny, np.inf, -np.inf], dtype=dtype)
    return np.resize(cycle, count).reshape(shape)


@pytest.mark.parametrize("dtype", NUMERIC)
def test_every_numeric_type_round_trips_bit_for_bit(dtype):
    array = values_of(dtype, (3, 2, 2))
    model, [job] = through_json("m", [messages.JobInput("a", {"x": array}, None)])
    assert model == "m"
    decoded = job.inputs["x"]
    assert decoded.dtype == np.dtype(dtype) and decoded.shape == (3, 2, 2)
    assert decoded.tobytes() == array.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    assert job.count == 3


def test_nan_round_trips():
    model, [job] = through_json("m", [messages.JobInput("a", {"x": np.array([np.nan, 1.0], np.float32)}, None)])
    assert np.isnan(job.inputs["x"][0]) and job.inputs["x"][1] == 1.0


def test_numbers_travel_little_endian_whatever_the_arrays_byte_order():
    big = np.array([[1, 2], [300, -4]], dtype=">i4")
    body = messages.encode("m", [messages.JobInput("a", {"x": big}, None)])
    raw = base64.b64decode(body["jobs"][0]["inputs"]["x"]["data"])
    assert raw == np.array([[1, 2], [300, -4]], dtype="<i4").tobytes()
    assert body["jobs"][0]["inputs"]["x"]["dtype"] == "int32"
    _, [job] = messages.decode(body)
    assert job.inputs["x"].tolist() == [[1, 2], [300, -4]]


def test_strings_round_trip_as_bytes_whatever_they_hold():
    items = strings(b"hello", b"", b"\xff\x00\xfe not utf-8", "caf\u00e9".encode(), b"x" * 1000, b"\x00",
                    shape=(3, 2))
    _, [job] = through_json("m", [messages.JobInput("a", {"text": items}, None)])
    decoded = job.inputs["text"]
    assert decoded.dtype == object and decoded.shape == (3, 2)
    assert decoded.tolist() == items.tolist()
    assert all(type(item) is bytes for item in decoded.ravel())


def test_a_message_of_several_jobs_with_several_inputs_round_trips_with_every_field():
    jobs = [
        messages.JobInput("a", {"image": np.arange(2 * 4, dtype=np.uint8).reshape(2, 4),
                                "scale": np.array([0.5, 2.0], np.float32),
                                "tag": strings(b"x", b"y")},
                          "api-1", BULK, deadline=1700000000.5, queued_at=1699999999.25, version=3),
        messages.JobInput("b", {"image": np.zeros((1, 4), np.uint8), "scale": np.ones(1, np.float32),
                                "tag": strings(b"z")}, None),
    ]
    model, decoded = through_json("resnet-50", jobs)
    assert model == "resnet-50"
    assert decoded == jobs
    assert (decoded[0].priority, decoded[0].deadline, decoded[0].queued_at, decoded[0].version) == \
        (BULK, 1700000000.5, 1699999999.25, 3)
    assert (decoded[1].reply_to, decoded[1].priority, decoded[1].deadline, decoded[1].version) == \
        (None, INTERACTIVE, None, None)
    assert [job.count for job in decoded] == [2, 1]
    assert messages.image_count(decoded) == 3


def test_jobs_compare_by_every_field_and_every_tensor():
    job = messages.JobInput("a", {"x": np.array([1, 2], np.int32)}, None)
    assert job == messages.JobInput("a", {"x": np.array([1, 2], np.int32)}, None)
    assert job != messages.JobInput("a", {"x": np.array([1, 3], np.int32)}, None)
    assert job != messages.JobInput("a", {"x": np.array([1, 2], np.int64)}, None)
    assert job != messages.JobInput("a", {"y": np.array([1, 2], np.int32)}, None)
    assert job != messages.JobInput("a", {"x": np.array([1, 2], np.int32)}, None, version=1)


def test_the_body_is_plain_json_naming_its_format_and_model():
    body = messages.encode("mnist", [messages.JobInput("a", {"x": np.array([7], np.uint8)}, "api")])
    assert json.loads(json.dumps(body)) == body
    assert body["v"] == messages.FORMAT_VERSION == 2 and body["model"] == "mnist"
    assert body["jobs"][0]["inputs"]["x"] == {"dtype": "uint8", "shape": [1], "data": "Bw=="}


def valid_job(**changes) -> dict:
    job = messages.encode("m", [messages.JobInput("a", {"x": np.array([1, 2], np.int16)}, None)])["jobs"][0]
    return {**job, **changes}


def tensor(**changes) -> dict:
    return {**valid_job()["inputs"]["x"], **changes}


def test_a_large_numeric_tensor_travels_beside_the_message_and_a_small_one_in_it():
    big = values_of("float32", (messages.MAX_INLINE_BYTES // 4 // 8 + 1, 8)).astype(">f4")  # just over, big-endian
    small = (np.arange(len(big) * 2) % 256).astype(np.uint8).reshape(len(big), 2)
    text = strings(b"x" * messages.MAX_INLINE_BYTES, b"y")  # strings always travel inline
    job = messages.JobInput("a", {"big": big, "small": small}, None)
    body = json.loads(json.dumps(messages.encode("m", [job, messages.JobInput("b", {"text": text}, None)],
                                                 store_large=True)))
    assert "data" in messages.encode("m", [job])["jobs"][0]["inputs"]["big"]  # unless asked: inline
    assert body["jobs"][0]["inputs"]["big"] == {"dtype": "float32", "shape": list(big.shape), "stored": True}
    assert "data" in body["jobs"][0]["inputs"]["small"] and "data" in body["jobs"][1]["inputs"]["text"]
    stored = messages.stored_inputs([job, messages.JobInput("b", {"text": text}, None)])
    assert stored == {"a": {"big": big.astype("<f4").tobytes()}}

    _, [decoded, _] = messages.decode(body)
    assert decoded.stored == ["big"] and decoded.count == len(big)
    assert isinstance(decoded.inputs["big"], messages.StoredTensor)
    read = decoded.with_stored(stored["a"])
    assert read.stored == [] and read == messages.JobInput("a", {"big": big.astype("<f4"), "small": small}, None)


def test_stored_inputs_that_are_gone_or_of_the_wrong_size_are_refused():
    big = np.zeros((messages.MAX_INLINE_BYTES + 1,), np.uint8)
    [job] = messages.decode(messages.encode("m", [messages.JobInput("a", {"x": big}, None)], store_large=True))[1]
    with pytest.raises(messages.MessageError, match="no longer stored"):
        job.with_stored({})
    with pytest.raises(messages.MessageError, match="bytes stored"):
        job.with_stored({"x": b"\0" * messages.MAX_INLINE_BYTES})


def body(*jobs: dict, **changes) -> dict:
    return {"v": 2, "model": "m", "jobs": list(jobs), **changes}


def test_a_valid_body_as_these_tests_build_it_is_accepted():
    assert messages.decode(body(valid_job()))[1][0].inputs["x"].tolist() == [1, 2]


@pytest.mark.parametrize("message", [
    None,
    [],
    "text",
    {"v": 2, "jobs": []},  # no model
    body(model=None),
    body(model=7),
    body(jobs="not a list"),
    body(valid_job(), v=1),
    {"v": 1, "jobs": [{"id": "a", "pixels": "AAAA", "reply_to": None}]},  # the first release's format
    body("not a job"),
    body({k: v for k, v in valid_job().items() if k != "id"}),
    body({k: v for k, v in valid_job().items() if k != "reply_to"}),
    body({k: v for k, v in valid_job().items() if k != "inputs"}),
    body(valid_job(inputs={})),
    body(valid_job(inputs=[])),
    body(valid_job(inputs={"x": "AAAA"})),
    body(valid_job(inputs={"x": tensor(data="not base64!")})),
    body(valid_job(inputs={"x": tensor(data="AAA")})),  # base64 of no whole bytes
    body(valid_job(inputs={"x": tensor(data="AAAA")})),  # 3 bytes for 2 int16
    body(valid_job(inputs={"x": tensor(shape=[3])})),  # 4 bytes for 3 int16
    body(valid_job(inputs={"x": tensor(shape=[-1, -1])})),
    body(valid_job(inputs={"x": tensor(shape=["two"])})),
    body(valid_job(inputs={"x": tensor(dtype="complex64")})),
    body(valid_job(inputs={"x": tensor(dtype="object")})),
    body(valid_job(inputs={"x": tensor(dtype="U2")})),
    body(valid_job(inputs={"x": tensor(dtype="no such type")})),
    body(valid_job(inputs={"x": {"dtype": "int16", "shape": [2]}})),  # no data
    body(valid_job(inputs={"x": {"dtype": "string", "shape": [2], "stored": True}})),  # strings are never stored
    body(valid_job(inputs={"x": {"dtype": "no such type", "shape": [2], "stored": True}})),
    body(valid_job(inputs={"x": {"dtype": "int16", "shape": ["two"], "stored": True}})),
    body(valid_job(inputs={"x": {"dtype": "int16", "shape": [], "data": "AQA="}})),  # a scalar: no items
    body(valid_job(inputs={"x": {"dtype": "int16", "shape": [0], "data": ""}})),  # no items
    body(valid_job(inputs={"x": {"dtype": "string", "shape": [2], "data": ["eA=="]}})),  # 1 string for 2
    body(valid_job(inputs={"x": {"dtype": "string", "shape": [1], "data": ["not base64!"]}})),
    body(valid_job(inputs={"x": {"dtype": "string", "shape": [1], "data": [7]}})),
    body(valid_job(inputs={"x": tensor(), "y": {"dtype": "uint8", "shape": [1], "data": "AQ=="}})),  # 2 and 1 items
    body(valid_job(priority="urgent")),
    body(valid_job(priority=None)),
    body(valid_job(deadline="soon")),
    body(valid_job(queued_at="earlier")),
    body(valid_job(version="newest")),
    body(valid_job(), valid_job(inputs={})),  # one bad job spoils the message
])
def test_anything_else_is_refused(message):
    with pytest.raises(messages.MessageError):
        messages.decode(message)


def test_a_worker_reads_the_jobs_it_can_and_tells_those_it_cannot_by_id_reply_list_priority_and_items():
    message = messages.read(body(
        valid_job(id="a"),
        valid_job(id="empty", reply_to="api-1", inputs={"x": {"dtype": "int16", "shape": [0], "data": ""}}),
        valid_job(id="garbled", priority=BULK, inputs={"x": tensor(shape=[3], data="not base64!")}),
        valid_job(id="odd", priority="urgent", reply_to=7, inputs={"x": tensor(), "y": tensor(shape=[1, 2])}),
        {"reply_to": None, "inputs": {}},  # no id: nothing can answer it
        valid_job(id="b"),
    ))
    assert (message.model, message.error, message.unidentified) == ("m", None, 1)
    assert [job.job_id for job in message.jobs] == ["a", "b"]
    assert [(job.job_id, job.reply_to, job.priority, job.count) for job in message.rejected] == [
        ("empty", "api-1", INTERACTIVE, 0), ("garbled", None, BULK, 3), ("odd", None, None, 2)]
    assert [job.reason for job in message.rejected] == [
        "it has no items", "malformed job: Error('Only base64 data is allowed')", "no priority 'urgent'"]


def test_a_message_of_no_format_this_release_reads_names_the_jobs_it_can():
    future = messages.read(body(valid_job(id="a", reply_to="api-1"), "junk", v=3))
    assert (future.model, future.jobs, future.error, future.unidentified) == (
        "m", [], "not an inferq v2 message", 1)
    assert [(job.job_id, job.reply_to, job.count) for job in future.rejected] == [("a", "api-1", 2)]
    assert messages.read(body(valid_job(id="a"), model=None)).model is None
    assert [job.job_id for job in messages.read(body(valid_job(id="a"), model=None)).rejected] == ["a"]
    assert messages.read([1, 2]) == messages.Message(None, [], [], "not an inferq v2 message")


def test_a_message_of_the_first_releases_is_read_as_the_mnist_models_when_asked():
    pixels = bytes(range(256)) * 3 + bytes(16) + b"\x07" * 784
    body = {"v": 1, "jobs": [{"id": "a", "pixels": base64.b64encode(pixels).decode(), "reply_to": "api-1",
                              "priority": BULK, "deadline": 12.5, "queued_at": 10.0}]}
    model, (job,) = messages.decode(json.loads(json.dumps(body)), legacy_model="mnist")
    assert model == "mnist" and (job.job_id, job.reply_to, job.priority, job.deadline, job.queued_at) == (
        "a", "api-1", BULK, 12.5, 10.0)
    assert job.count == 2 and job.inputs["inputdata"].dtype == np.uint8
    assert job.inputs["inputdata"].tobytes() == pixels
    with pytest.raises(messages.MessageError):
        messages.decode(body)  # only where the worker says whose it is
    with pytest.raises(messages.MessageError):
        messages.decode({"v": 1, "jobs": [{"id": "b", "pixels": "AAAA", "reply_to": None}]}, legacy_model="mnist")
