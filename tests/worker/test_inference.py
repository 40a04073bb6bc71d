"""One batch through ``answer_batch``: jobs grouped by model and version, one model call per group, with
small fake models (a spec and ``predict``), no TensorFlow."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

import numpy as np
import orjson
import pytest
import redis

from inferq import keys, messages
from inferq.jobs import DONE, EXPIRED, FAILED, JobStore, Outcome
from inferq.model_config import ModelConfig
from inferq.model_spec import ANY, ModelSpec, TensorSpec
from inferq.priorities import BULK, INTERACTIVE
from inferq.settings import Settings
from worker.inference import answer_batch, plan_calls
from worker.metrics import WorkerMetrics
from worker.model_errors import InputMismatch

DEFAULT_CONFIG = ModelConfig()


def first_and_sum(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each item's first value mod 10 as its label, and the sum of its values (every input's)."""
    flat = [array.reshape(len(array), -1).astype(np.float64) for _, array in sorted(inputs.items())]
    first = flat[0]
    return {"labels": first[:, 0].astype(np.int64) % 10,
            "sums": sum(array.sum(axis=1) for array in flat).astype(np.float32)}


class FakeModel:
    """A loaded model version as the worker sees one: its spec, and one ``predict`` call a batch."""

    def __init__(self, name: str = "mnist", version: int = 7, *, inputs: tuple[str, ...] = ("x",),
                 answer: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] = first_and_sum,
                 fail: str | Exception | None = None, config: ModelConfig = DEFAULT_CONFIG,
                 shape: tuple[int, ...] = (ANY, ANY)) -> None:
        self.spec = ModelSpec(name, version, "serving_default",
                              tuple(TensorSpec(key, "float32", shape) for key in inputs),
                              (TensorSpec("labels", "int64", (ANY,)), TensorSpec("sums", "float32", (ANY,))),
                              config)
        self.answer = answer
        self.fail = fail
        #: The inputs of each call.
        self.calls: list[dict[str, np.ndarray]] = []

    @property
    def version(self) -> int:
        return self.spec.version

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append(inputs)
        if self.fail:
            raise self.fail if isinstance(self.fail, Exception) else RuntimeError(self.fail)
        return self.answer(inputs)

    @property
    def call_sizes(self) -> list[int]:
        return [len(next(iter(inputs.values()))) for inputs in self.calls]


class Served:
    """``find_model``: the models served, by name and version; no version means the newest."""

    def __init__(self, *models: FakeModel) -> None:
        self.models = {(model.spec.name, model.spec.version): model for model in models}
        self.asked: list[tuple[str, int | None]] = []

    def __call__(self, name: str, version: int | None) -> FakeModel | None:
        self.asked.append((name, version))
        if version is None:
            versions = [v for n, v in self.models if n == name]
            version = max(versions) if versions else None
        return self.models.get((name, version))


def job(job_id: str, firsts: list[int], reply_to: str | None = None, priority: str = INTERACTIVE,
        deadline: float | None = None, *, width: int = 4, version: int | None = None,
        dtype: str = "uint8") -> messages.JobInput:
    values = np.zeros((len(firsts), width), dtype)
    values[:, 0] = firsts
    return messages.JobInput(job_id, {"x": values}, reply_to, priority, deadline, time.time() - 0.25, version)


def message(model: str, *jobs: messages.JobInput) -> dict:
    """A message as the worker's task receives it from an API whose workers all read stored tensors."""
    return messages.encode(model, list(jobs), store_large=True)


@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=60, depth_limits=Settings().depth_limits)


def admit(store, model: str, *jobs: messages.JobInput) -> None:
    """As the API admits jobs: with the inputs that travel beside their message stored."""
    for one in jobs:
        assert store.admit([(one.job_id, ["f"] * one.count)], model=model, priority=one.priority,
                           stored_inputs=messages.stored_inputs([one]),
                           reply_to={one.job_id: one.reply_to} if one.reply_to else None) == [None]


def outputs(store, job_id: str) -> dict:
    record = store.get(job_id)
    assert record.status == DONE, record.outcome
    return record.outcome.answer["outputs"]


def error(store, job_id: str) -> str:
    record = store.get(job_id)
    assert record.status == FAILED, record.outcome
    return record.outcome.error


def error_with_id(store, job_id: str, caplog, said: str, logged: str) -> str:
    """A job's error, which must be ``said`` and an error id, with nothing of ``logged``, the worker's
    own text, which the log holds in full under the same id."""
    text = error(store, job_id)
    found = re.fullmatch(re.escape(said) + r" \(error id ([0-9a-f]{8})\); see the worker's log", text)
    assert found, text
    assert logged not in text
    logs = [logging.Formatter().format(record) for record in caplog.records if found[1] in record.getMessage()]
    assert len(logs) == 1 and logged in logs[0], (found[1], caplog.text)
    return found[1]


def idle(store, *models: str) -> bool:
    return all(counts == {INTERACTIVE: 0, BULK: 0} for counts in store.queued_images(list(models)).values())


def test_the_jobs_of_all_messages_of_a_model_go_through_one_model_call(store):
    jobs = [job("a", [3]), job("b", [14, 25], reply_to="api-1"), job("c", [6])]
    admit(store, "mnist", *jobs)
    model, metrics = FakeModel(), WorkerMetrics()
    answer_batch([message("mnist", *jobs[:2]), message("mnist", jobs[2])], Served(model), store, metrics)

    assert model.call_sizes == [4]
    assert model.calls[0]["x"][:, 0].tolist() == [3, 14, 25, 6]
    assert store.get("a").outcome == Outcome.done({"model_version": 7, "outputs": {"labels": [3], "sums": [3.0]}})
    assert outputs(store, "b") == {"labels": [4, 5], "sums": [14.0, 25.0]}
    assert [(job_id, outcome.status) for job_id, outcome in store.replies("api-1", 0.1)] == [("b", DONE)]
    assert idle(store, "mnist")
    assert (metrics.batches, metrics.images) == (1, 4)
    sample = metrics.registry.get_sample_value
    assert sample("inferq_worker_messages_total") == 2
    assert sample("inferq_worker_batch_images_count", {"model": "mnist", "version": "7"}) == 1
    assert sample("inferq_worker_batch_images_sum", {"model": "mnist", "version": "7"}) == 4
    assert sample("inferq_worker_model_call_seconds_count", {"model": "mnist", "version": "7"}) == 1
    assert sample("inferq_worker_batch_seconds_count") == 1


def test_two_models_in_one_batch_get_one_call_each(store):
    digits = [job("d1", [1]), job("d2", [2, 3])]
    texts = [job("t1", [4], reply_to="api-1"), job("t2", [5])]
    admit(store, "mnist", *digits)
    admit(store, "resnet", *texts)
    mnist, resnet, metrics = FakeModel("mnist", 7), FakeModel("resnet", 2), WorkerMetrics()
    served = Served(mnist, resnet)
    answer_batch([message("mnist", digits[0]), message("resnet", texts[0]), message("mnist", digits[1]),
                  message("resnet", texts[1])], served, store, metrics)

    assert (mnist.call_sizes, resnet.call_sizes) == ([3], [2])
    assert sorted(served.asked) == [("mnist", None), ("resnet", None)]
    assert outputs(store, "d2")["labels"] == [2, 3] and outputs(store, "t2")["labels"] == [5]
    assert store.get("d1").outcome.answer["model_version"] == 7
    assert store.get("t1").outcome.answer["model_version"] == 2
    assert store.replies("api-1", 0.1) == [("t1", store.get("t1").outcome)]
    assert idle(store, "mnist", "resnet")
    sample = metrics.registry.get_sample_value
    assert sample("inferq_worker_batch_images_sum", {"model": "mnist", "version": "7"}) == 3
    assert sample("inferq_worker_batch_images_sum", {"model": "resnet", "version": "2"}) == 2
    assert (metrics.batches, metrics.images) == (2, 5)


def test_a_model_that_fails_fails_only_its_own_jobs_saying_so_and_logging_the_reason(store, caplog):
    digits = [job("d1", [1]), job("d2", [2], reply_to="api-1")]
    texts = [job("t1", [4], reply_to="api-1")]
    admit(store, "mnist", *digits)
    admit(store, "resnet", *texts)
    metrics = WorkerMetrics()
    answer_batch([message("mnist", *digits), message("resnet", *texts)],
                 Served(FakeModel("mnist", 7, fail="out of memory"), FakeModel("resnet", 2)), store, metrics)

    ids = {error_with_id(store, job_id, caplog, "model 'mnist' version 7 failed on this batch", "out of memory")
           for job_id in ("d1", "d2")}
    assert len(ids) == 1  # one call, one error
    assert outputs(store, "t1")["labels"] == [4]
    assert sorted((job_id, outcome.status) for job_id, outcome in store.replies("api-1", 0.1)) == \
        [("d2", FAILED), ("t1", DONE)]
    sample = metrics.registry.get_sample_value
    assert sample("inferq_worker_failed_jobs_total", {"model": "mnist"}) == 2
    assert sample("inferq_worker_failed_jobs_total", {"model": "resnet"}) is None
    assert idle(store, "mnist", "resnet")


def test_a_model_not_served_fails_its_jobs_saying_so_and_the_others_are_answered(store):
    admit(store, "gone", job("g", [1], reply_to="api-1"))
    admit(store, "mnist", job("pinned", [2], version=9), job("newest", [3]))
    metrics = WorkerMetrics()
    answer_batch([message("gone", job("g", [1], reply_to="api-1")),
                  message("mnist", job("pinned", [2], version=9), job("newest", [3]))],
                 Served(FakeModel("mnist", 7)), store, metrics)

    assert error(store, "g") == "model 'gone' is not served by this worker (removed from the repository?)"
    assert error(store, "pinned") == \
        "model 'mnist' version 9 is not served by this worker (removed from the repository?)"
    assert outputs(store, "newest")["labels"] == [3]
    assert store.replies("api-1", 0.1) == [("g", store.get("g").outcome)]
    assert metrics.registry.get_sample_value("inferq_worker_failed_jobs_total", {"model": "gone"}) == 1
    assert idle(store, "gone", "mnist")


def test_a_model_that_cannot_be_loaded_fails_its_jobs_without_its_paths_and_not_the_batch(store, caplog):
    admit(store, "broken", job("b", [1]))
    admit(store, "mnist", job("m", [2]))

    def find(name, version):
        if name == "broken":
            raise OSError("/models/broken/1/saved_model.pb: no such file")
        return Served(FakeModel())(name, version)

    answer_batch([message("broken", job("b", [1])), message("mnist", job("m", [2]))], find, store, WorkerMetrics())
    error_with_id(store, "b", caplog, "model 'broken' could not be loaded", "/models/broken/1/saved_model.pb")
    assert store.get("m").status == DONE


def test_jobs_pinned_to_a_version_run_on_it_in_a_group_of_their_own(store):
    jobs = [job("v1a", [1], version=1), job("newest", [2]), job("v2", [3], version=2), job("v1b", [4], version=1)]
    admit(store, "mnist", *jobs)
    v1, v2 = FakeModel("mnist", 1), FakeModel("mnist", 2)
    served = Served(v1, v2)
    answer_batch([message("mnist", *jobs[:2]), message("mnist", *jobs[2:])], served, store, WorkerMetrics())

    assert served.asked == [("mnist", 1), ("mnist", None), ("mnist", 2)]  # one look a group
    assert v1.call_sizes == [2] and v1.calls[0]["x"][:, 0].tolist() == [1, 4]
    assert v2.call_sizes == [1, 1]  # the newest and version 2 are asked for apart, and run apart
    versions = {job_id: store.get(job_id).outcome.answer["model_version"] for job_id in ("v1a", "newest", "v2", "v1b")}
    assert versions == {"v1a": 1, "newest": 2, "v2": 2, "v1b": 1}
    assert outputs(store, "v1b")["labels"] == [4]


def test_items_of_different_shapes_or_types_run_in_separate_calls(store):
    jobs = [job("narrow-1", [1], width=3), job("wide", [2, 3], width=5), job("narrow-2", [4, 5], width=3),
            job("float", [6], width=3, dtype="float32")]
    admit(store, "mnist", *jobs)
    model = FakeModel()
    answer_batch([message("mnist", *jobs)], Served(model), store, WorkerMetrics())

    assert [(len(call["x"]), call["x"].shape[1], call["x"].dtype.name) for call in model.calls] == \
        [(3, 3, "uint8"), (2, 5, "uint8"), (1, 3, "float32")]
    assert outputs(store, "narrow-2")["labels"] == [4, 5] and outputs(store, "wide")["labels"] == [2, 3]
    assert outputs(store, "float")["labels"] == [6]


def test_a_model_of_several_inputs_gets_each_stacked_by_name(store):
    def two(first: list[int], second: float, job_id: str) -> messages.JobInput:
        return messages.JobInput(job_id, {"image": np.array([[value, 0] for value in first], np.uint8),
                                          "scale": np.full((len(first), 1), second, np.float32)}, None)

    jobs = [two([1, 2], 0.5, "a"), two([3], 2.0, "b")]
    admit(store, "pair", *jobs)
    model = FakeModel("pair", 1, inputs=("image", "scale"))
    answer_batch([message("pair", *jobs)], Served(model), store, WorkerMetrics())

    [call] = model.calls
    assert call["image"].tolist() == [[1, 0], [2, 0], [3, 0]] and call["scale"].ravel().tolist() == [0.5, 0.5, 2.0]
    assert outputs(store, "a") == {"labels": [1, 2], "sums": [1.5, 2.5]}
    assert outputs(store, "b") == {"labels": [3], "sums": [5.0]}


def test_outputs_of_every_kind_come_back_split_per_job(store):
    def every_kind(inputs):
        n = len(inputs["x"])
        text = np.empty(n, dtype=object)
        text[:] = [b"cat", b"\xff\xfe", "caf\u00e9".encode()][:n]
        return {"text": text, "unicode": np.array(["x", "y", "z"][:n]), "flags": np.arange(n) % 2 == 0,
                "half": np.full((n, 2), 0.5, np.float16), "big": np.arange(n, dtype=">i4"),
                "matrix": np.arange(n * 4, dtype=np.float64).reshape(n, 2, 2)}

    jobs = [job("a", [1, 2]), job("b", [3])]
    admit(store, "mnist", *jobs)
    answer_batch([message("mnist", *jobs)], Served(FakeModel(answer=every_kind)), store, WorkerMetrics())

    assert outputs(store, "a") == {"text": ["cat", {"b64": "//4="}], "unicode": ["x", "y"], "flags": [True, False],
                                   "half": [[0.5, 0.5], [0.5, 0.5]], "big": [0, 1],
                                   "matrix": [[[0.0, 1.0], [2.0, 3.0]], [[4.0, 5.0], [6.0, 7.0]]]}
    assert outputs(store, "b") == {"text": ["caf\u00e9"], "unicode": ["z"], "flags": [True], "half": [[0.5, 0.5]],
                                   "big": [2], "matrix": [[[8.0, 9.0], [10.0, 11.0]]]}


@pytest.mark.parametrize(("answer", "reason"), [
    (lambda inputs: {"labels": np.zeros(1, np.int64)}, "output 'labels' has shape [1] for 3 items"),
    (lambda inputs: {"labels": np.int64(3)}, "output 'labels' has shape [] for 3 items"),
    (lambda inputs: {"phase": np.zeros(3, np.complex64)}, "output 'phase' is of type complex64, which inferq "
                                                          "cannot answer with"),
])
def test_an_answer_that_does_not_fit_fails_only_that_models_jobs(store, caplog, answer, reason):
    jobs = [job("a", [1, 2]), job("b", [3])]
    admit(store, "odd", *jobs)
    admit(store, "mnist", job("m", [4]))
    answer_batch([message("odd", *jobs), message("mnist", job("m", [4]))],
                 Served(FakeModel("odd", 1, answer=answer), FakeModel()), store, WorkerMetrics())
    assert error_with_id(store, "a", caplog, "model 'odd' version 1 failed on this batch", reason) == \
        error_with_id(store, "b", caplog, "model 'odd' version 1 failed on this batch", reason)
    assert store.get("m").status == DONE
    assert idle(store, "odd", "mnist")


def test_a_message_that_is_not_ours_is_dropped_and_the_others_answered(store):
    admit(store, "mnist", job("a", [1]))
    metrics = WorkerMetrics()
    answer_batch([{"something": "else"}, {"v": 1, "jobs": []}, message("mnist", job("a", [1]))],
                 Served(FakeModel()), store, metrics)
    assert store.get("a").status == DONE
    assert metrics.registry.get_sample_value("inferq_worker_messages_total") == 3


def test_a_batch_of_nothing_but_messages_not_ours_writes_nothing(store):
    model = FakeModel()
    answer_batch([{"something": "else"}], Served(model), store, WorkerMetrics())
    assert model.calls == []


def test_redis_out_of_reach_propagates_so_the_batch_is_delivered_again(unreachable_redis):
    store = JobStore(unreachable_redis, result_ttl_s=60, depth_limits=Settings().depth_limits)
    with pytest.raises(redis.ConnectionError):
        answer_batch([message("mnist", job("a", [1]))], Served(FakeModel()), store, WorkerMetrics())


def test_jobs_past_their_deadline_end_expired_unrun_and_the_others_are_answered(store):
    late = job("late", [1], reply_to="api-1", deadline=time.time() - 1)
    on_time = job("on-time", [2], priority=BULK, deadline=time.time() + 60)
    admit(store, "mnist", late, on_time)
    model, metrics = FakeModel(), WorkerMetrics()
    answer_batch([message("mnist", late, on_time)], Served(model), store, metrics)

    assert model.call_sizes == [1]  # the expired job's image never reached the model
    record = store.get("late")
    assert record.status == EXPIRED and "deadline passed" in record.outcome.error and record.started_at is None
    assert [(job_id, outcome.status) for job_id, outcome in store.replies("api-1", 0.1)] == [("late", EXPIRED)]
    assert store.get("on-time").status == DONE
    assert idle(store, "mnist")
    expired = metrics.registry.get_sample_value
    assert expired("inferq_worker_expired_jobs_total", {"model": "mnist", "priority": "interactive"}) == 1
    assert expired("inferq_worker_expired_jobs_total", {"model": "mnist", "priority": "bulk"}) is None


def test_a_batch_of_expired_jobs_calls_no_model(store):
    late = job("late", [1], deadline=time.time() - 1)
    admit(store, "mnist", late)
    model, metrics = FakeModel(), WorkerMetrics()
    served = Served(model)
    answer_batch([message("mnist", late)], served, store, metrics)
    assert model.calls == [] and served.asked == [] and store.get("late").status == EXPIRED
    assert metrics.batches == 0


def test_queue_waits_are_measured_by_model_and_priority(store):
    jobs = [job("a", [1]), job("b", [2], priority=BULK)]
    admit(store, "mnist", *jobs)
    admit(store, "resnet", job("r", [3]))
    metrics = WorkerMetrics()
    answer_batch([message("mnist", *jobs), message("resnet", job("r", [3]))],
                 Served(FakeModel(), FakeModel("resnet", 1)), store, metrics)
    wait = metrics.registry.get_sample_value
    for model, priority in (("mnist", "interactive"), ("mnist", "bulk"), ("resnet", "interactive")):
        assert wait("inferq_worker_queue_wait_seconds_count", {"model": model, "priority": priority}) == 1
        assert wait("inferq_worker_queue_wait_seconds_sum", {"model": model, "priority": priority}) >= 0.25
    assert wait("inferq_worker_queue_wait_seconds_count", {"model": "resnet", "priority": "bulk"}) is None


def test_inputs_stored_beside_the_message_are_read_for_the_call_and_deleted_with_the_outcome(store, fake_redis):
    rows = messages.MAX_INLINE_BYTES // 4 + 1  # a bulk job's size: its inputs are stored, not in the message
    big, small = job("big", [n % 256 for n in range(rows)], priority=BULK), job("small", [5])
    admit(store, "mnist", big, small)
    assert messages.stored_inputs([big, small]).keys() == {"big"}
    model = FakeModel()
    answer_batch([message("mnist", big, small)], Served(model), store, WorkerMetrics(), max_batch_size=rows + 1)
    assert model.call_sizes == [rows + 1]
    assert outputs(store, "big")["labels"] == [n % 256 % 10 for n in range(rows)]
    assert outputs(store, "small")["labels"] == [5]
    assert not fake_redis.exists(keys.job_inputs("big"))
    assert idle(store, "mnist")


def test_a_job_whose_stored_inputs_are_gone_fails_and_one_delivered_again_after_finishing_is_left_as_it_was(
        store, fake_redis):
    rows = messages.MAX_INLINE_BYTES // 4 + 1
    gone, kept, other = job("gone", [1] * rows, priority=BULK), job("kept", [2] * rows, priority=BULK), job("o", [3])
    admit(store, "mnist", gone, kept, other)
    fake_redis.delete(keys.job_inputs("gone"))
    batch = [message("mnist", gone, kept, other)]
    answer_batch(batch, Served(FakeModel()), store, WorkerMetrics())
    assert "no longer stored" in error(store, "gone")
    finished = {job_id: store.get(job_id).outcome for job_id in ("kept", "o")}
    assert outputs(store, "kept")["labels"] == [2] * rows

    # The batch delivered again after its outcomes were written (the worker died before its ack):
    # nothing is run on inputs that are gone, and no outcome changes.
    model = FakeModel()
    answer_batch(batch, Served(model), store, WorkerMetrics())
    assert model.call_sizes == [1]
    assert {job_id: store.get(job_id).outcome for job_id in ("kept", "o")} == finished
    assert "no longer stored" in error(store, "gone") and idle(store, "mnist")


def test_a_job_of_no_items_fails_alone_and_the_other_jobs_of_its_message_are_answered(store):
    """As the API admitted them, the empty one counted as no items; the worker once dropped the whole
    message, leaving all three queued for ever and their counter up."""
    first, empty, last = job("a", [1, 2], reply_to="api-1"), job("empty", [], reply_to="api-1"), job("c", [3])
    admit(store, "mnist", first, empty, last)
    model, metrics = FakeModel(), WorkerMetrics()
    answer_batch([message("mnist", first, empty, last)], Served(model), store, metrics)

    assert outputs(store, "a")["labels"] == [1, 2] and outputs(store, "c")["labels"] == [3]
    assert error(store, "empty") == "the worker could not read this job: it has no items"
    assert sorted((job_id, outcome.status) for job_id, outcome in store.replies("api-1", 0.1)) == \
        [("a", DONE), ("empty", FAILED)]
    assert model.call_sizes == [3]
    assert metrics.registry.get_sample_value("inferq_worker_failed_jobs_total", {"model": "mnist"}) == 1
    assert idle(store, "mnist")


def test_a_job_whose_inputs_cannot_be_read_is_counted_down_by_what_its_admission_counted(store):
    good, bad, pinned = job("good", [1]), job("bad", [2, 3, 4], priority=BULK), job("pinned", [5, 6])
    admit(store, "mnist", good, bad, pinned)
    body = message("mnist", good, bad, pinned)
    body["jobs"][1]["inputs"]["x"]["data"] = "not base64!"
    body["jobs"][1]["priority"] = "urgent"  # the record, not the message, says which counter it is in
    body["jobs"][2]["inputs"]["x"]["shape"] = ["two", 4]
    answer_batch([body], Served(FakeModel()), store, WorkerMetrics())

    assert outputs(store, "good")["labels"] == [1]
    assert error(store, "bad").startswith("the worker could not read this job: ")
    assert error(store, "pinned").startswith("the worker could not read this job: malformed job: ValueError(")
    assert idle(store, "mnist")


def test_a_message_not_ours_is_logged_and_the_jobs_it_names_are_failed(store, caplog):
    admit(store, "mnist", job("future", [1], reply_to="api-1"), job("nameless", [2]), job("kept", [3]))
    future = message("mnist", job("future", [1], reply_to="api-1")) | {"v": 99}  # of a later release
    nameless = message("mnist", job("nameless", [2]))
    del nameless["model"]  # its counter is found from the job's record
    answer_batch([future, nameless, [b"junk"], message("mnist", job("kept", [3]))], Served(FakeModel()), store,
                 WorkerMetrics())

    for job_id in ("future", "nameless"):
        assert error(store, job_id) == "the worker could not read this job: not an inferq v2 message"
    assert store.replies("api-1", 0.1) == [("future", store.get("future").outcome)]
    assert store.get("kept").status == DONE
    assert idle(store, "mnist")
    dropped = [record.getMessage() for record in caplog.records if "not ours" in record.getMessage()]
    assert len(dropped) == 3 and "b'junk'" in dropped[2] and "'v': 99" in dropped[0]


def test_calls_are_planned_full_and_in_order_with_no_more_items_than_the_limit():
    assert plan_calls([3, 7, 5], 8) == [[(0, 0, 3), (1, 0, 5)], [(1, 5, 7), (2, 0, 5)]]
    assert plan_calls([20], 8) == [[(0, 0, 8)], [(0, 8, 16)], [(0, 16, 20)]]
    assert plan_calls([2, 2], 4) == [[(0, 0, 2), (1, 0, 2)]]
    assert plan_calls([2, 3], None) == [[(0, 0, 2)], [(1, 0, 3)]]


def one_at_a_time(values: np.ndarray) -> dict:
    """Each item's answer from a call of its own, the reference a batch's answers must equal."""
    answers = [first_and_sum({"x": values[i:i + 1]}) for i in range(len(values))]
    return {key: np.concatenate([answer[key] for answer in answers]).tolist() for key in answers[0]}


def test_no_model_call_holds_more_than_the_models_max_batch_size_and_answers_keep_their_order(store):
    rng = np.random.default_rng(5)
    bulk = messages.JobInput("bulk", {"x": rng.integers(0, 256, (1024, 784), np.uint8)}, None, BULK)
    small = [messages.JobInput(f"s{n}", {"x": rng.integers(0, 256, (n, 784), np.uint8)}, "api-1")
             for n in (3, 7, 5)]
    admit(store, "mnist", bulk, *small)
    model, metrics = FakeModel(config=ModelConfig(max_batch_size=8)), WorkerMetrics()
    answer_batch([message("mnist", bulk), message("mnist", *small)], Served(model), store, metrics, max_batch_size=64)

    assert max(model.call_sizes) == 8 and sum(model.call_sizes) == 1024 + 15
    assert len(model.call_sizes) == 130  # packed full: 1,039 items in 130 calls of 8, the last of 7
    for one in (bulk, *small):
        assert outputs(store, one.job_id) == one_at_a_time(one.inputs["x"]), one.job_id
    assert (metrics.batches, metrics.images) == (130, 1039)
    assert idle(store, "mnist")


def test_a_models_config_that_says_nothing_is_bounded_by_the_workers_max_batch_size(store):
    jobs = [job("a", list(range(10))), job("b", [4, 5])]
    admit(store, "mnist", *jobs)
    model = FakeModel()
    answer_batch([message("mnist", *jobs)], Served(model), store, WorkerMetrics(), max_batch_size=4)
    assert model.call_sizes == [4, 4, 4]
    assert outputs(store, "a")["labels"] == list(range(10)) and outputs(store, "b")["labels"] == [4, 5]


def test_a_model_without_a_batch_dimension_gets_each_job_whole_in_a_call_of_its_own(store):
    """As Triton serves a model of max_batch_size 0: its tensors' full shapes are each request's."""
    jobs = [job("a", [1, 2]), job("b", [3, 4])]
    admit(store, "fixed", *jobs)
    model = FakeModel("fixed", 1, shape=(2, 4), config=ModelConfig(max_batch_size=1))
    answer_batch([message("fixed", *jobs)], Served(model), store, WorkerMetrics())
    assert model.call_sizes == [2, 2]
    assert outputs(store, "a")["labels"] == [1, 2] and outputs(store, "b")["labels"] == [3, 4]


def test_a_call_that_fails_fails_the_jobs_it_held_and_no_others(store, caplog):
    def refuses_99(inputs):
        if (inputs["x"][:, 0] == 99).any():
            raise RuntimeError("/srv/models/mnist/1/variables: 99 is out of range")
        return first_and_sum(inputs)

    jobs = [job("a", [1, 2, 3]), job("b", [4, 5, 99, 6, 7, 8, 9]), job("c", [1, 2]), job("d", [3, 4, 5, 6])]
    admit(store, "mnist", *jobs)
    model = FakeModel(answer=refuses_99, config=ModelConfig(max_batch_size=4))
    answer_batch([message("mnist", *jobs)], Served(model), store, WorkerMetrics())

    # Calls a1-3 b4, b5 99 6 7 (fails: a is answered already, b fails), b8 9 c1 2 (run: c needs it), d.
    assert model.call_sizes == [4, 4, 4, 4]
    assert outputs(store, "a")["labels"] == [1, 2, 3] and outputs(store, "c")["labels"] == [1, 2]
    assert outputs(store, "d")["labels"] == [3, 4, 5, 6]
    error_with_id(store, "b", caplog, "model 'mnist' version 7 failed on this batch", "/srv/models")
    assert idle(store, "mnist")


def test_inputs_that_do_not_fit_the_signature_are_the_clients_own_and_said_as_they_are(store):
    admit(store, "mnist", job("a", [1]))
    mismatch = InputMismatch("input 'x' takes shape [-1, 784], got [1, 4] (-1: any size)")
    answer_batch([message("mnist", job("a", [1]))], Served(FakeModel(fail=mismatch)), store, WorkerMetrics())
    assert error(store, "a") == "model 'mnist' version 7 refused this batch's inputs: " \
                                "input 'x' takes shape [-1, 784], got [1, 4] (-1: any size)"


def test_cancelled_jobs_are_skipped_unrun_and_the_others_of_their_messages_answered(store, fake_redis):
    rows = messages.MAX_INLINE_BYTES // 4 + 1  # one with its inputs stored: they were deleted when it was cancelled
    jobs = [job("kept", [3]), job("gone", [4, 5], reply_to="api-1"),
            job("gone-big", [n % 256 for n in range(rows)], priority=BULK)]
    admit(store, "mnist", *jobs)
    assert store.cancel("gone") == store.cancel("gone-big") == "queued"
    model = FakeModel()
    answer_batch([message("mnist", *jobs[:2]), message("mnist", jobs[2])], Served(model), store, WorkerMetrics(),
                 max_batch_size=rows + 4)
    assert model.call_sizes == [1]  # the cancelled jobs' items were not run
    assert outputs(store, "kept") == {"labels": [3], "sums": [3.0]}
    for cancelled in ("gone", "gone-big"):
        assert store.get(cancelled).status == "cancelled" and store.get(cancelled).started_at is None
    # The waiter was answered by the cancel, once: the worker pushed nothing more.
    assert [outcome.status for _, outcome in store.replies("api-1", 0.1)] == ["cancelled"]
    assert store.replies("api-1", 0.05) == []
    assert idle(store, "mnist")


def test_a_batch_of_cancelled_jobs_calls_no_model(store):
    jobs = [job("a", [1]), job("b", [2])]
    admit(store, "mnist", *jobs)
    for one in jobs:
        store.cancel(one.job_id)
    model = FakeModel()
    answer_batch([message("mnist", *jobs)], Served(model), store, WorkerMetrics())
    assert model.calls == []
    assert [store.get(one.job_id).status for one in jobs] == ["cancelled", "cancelled"]

def test_a_job_over_several_calls_has_its_progress_written_after_each_call_and_announced(redis_url):
    # A real Redis: fakeredis runs the start of a batch only once its reply is read, after the calls.
    client = redis.Redis.from_url(redis_url)
    store = JobStore(client, result_ttl_s=60, depth_limits=Settings().depth_limits)
    # Channels are the server's, not a database's: ids no other suite's test uses.
    a, big = f"a-{uuid.uuid4()}", f"big-{uuid.uuid4()}"
    jobs = [job(a, [1, 2]), job(big, list(range(10)))]
    admit(store, "mnist", *jobs)
    channel = client.pubsub()
    channel.subscribe(keys.job_events(big), keys.job_events(a))
    seen: list[int] = []
    due = [0, 2, 6]

    def answer(inputs):
        # As the record reads while the call runs. The previous call's progress is sent without
        # waiting for its reply, so on a loaded machine Redis may serve this read first: wait for
        # the figure due (the worker is held in this call, so a report written only after it would
        # never arrive), up to a deadline, then keep what was read.
        deadline = time.monotonic() + 5
        while (done := store.get(big).items_done) != due[len(seen)] and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(done)
        return first_and_sum(inputs)

    answer_batch([message("mnist", *jobs)], Served(FakeModel(answer=answer)), store, WorkerMetrics(), max_batch_size=4)
    # Calls of 4: a's 2 and big's first 2, then big's 2..6, then 6..10; big's outcome is its last word.
    assert seen == due
    # Six events are due: read until they are in (or a deadline passes), not until a pause, which a
    # loaded machine can make between two of them.
    events: list[dict] = []
    deadline = time.monotonic() + 10
    while len(events) < 6 and time.monotonic() < deadline:
        got = channel.get_message(timeout=0.5)
        if got is not None and got["type"] == "message":
            events.append(got)
    extra = channel.get_message(timeout=0.1)  # and nothing more than those
    events += [extra] if extra is not None and extra["type"] == "message" else []
    said = [(m["channel"].decode().removeprefix(keys.job_events("")), orjson.loads(m["data"])) for m in events]
    assert [(job_id, event["status"], event.get("items_done")) for job_id, event in said] == [
        (a, "running", None), (big, "running", None), (big, "running", 2), (big, "running", 6),
        (a, "done", None), (big, "done", 6)]
    assert all(event["items"] == {a: 2, big: 10}[job_id] and event["job_id"] == job_id for job_id, event in said)
    assert store.get(big).status == DONE
