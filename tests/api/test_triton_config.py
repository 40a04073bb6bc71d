"""Triton's model configuration and repository index bodies, as Triton's server writes them."""

from __future__ import annotations

import json

import pytest

from api.kserve.triton_config import IndexEntry, model_config, repository_index
from inferq.dtypes import BY_NAME
from inferq.model_config import ModelConfig, VersionPolicy
from inferq.model_spec import ModelSpec, TensorSpec

IMAGES = TensorSpec("images", "float32", (-1, 784))
LABELS = TensorSpec("labels", "int64", (-1,))
PROBABILITIES = TensorSpec("probabilities", "float32", (-1, 10))
MNIST = ModelSpec("mnist", 3, "serving_default", (IMAGES,), (LABELS, PROBABILITIES))


def test_a_batching_model_as_triton_writes_it():
    assert model_config(MNIST, 64, 5.0) == {
        "name": "mnist",
        "platform": "tensorflow_savedmodel",
        "backend": "tensorflow",
        "runtime": "",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": 64,
        "input": [{"name": "images", "data_type": "TYPE_FP32", "format": "FORMAT_NONE", "dims": [784],
                   "is_shape_tensor": False, "allow_ragged_batch": False, "optional": False,
                   "is_non_linear_format_io": False}],
        "output": [
            {"name": "labels", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []},
             "label_filename": "", "is_shape_tensor": False, "is_non_linear_format_io": False},
            {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [10], "label_filename": "",
             "is_shape_tensor": False, "is_non_linear_format_io": False},
        ],
        "batch_input": [],
        "batch_output": [],
        "instance_group": [],
        "default_model_filename": "model.savedmodel",
        "cc_model_filenames": {},
        "metric_tags": {},
        "parameters": {},
        "model_warmup": [],
        "model_transaction_policy": {"decoupled": False},
        "dynamic_batching": {"preferred_batch_size": [], "max_queue_delay_microseconds": 5000,
                             "preserve_ordering": False, "priority_levels": 2, "default_priority_level": 1,
                             "priority_queue_policy": {}},
    }


def test_int64_fields_are_numbers_not_strings():
    spec = ModelSpec("m", 1, None, (TensorSpec("x", "uint8", (-1, -1, 28, 3)),), (PROBABILITIES,),
                     ModelConfig(version_policy=VersionPolicy(latest=None, specific=(1, 4))))
    config = json.loads(json.dumps(model_config(spec, 32, 0.25)))
    assert config["input"][0]["dims"] == [-1, 28, 3]  # any size stays -1
    assert config["version_policy"] == {"specific": {"versions": [1, 4]}}
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 250
    assert config["max_batch_size"] == 32


@pytest.mark.parametrize("dtype", list(BY_NAME))
def test_every_type_by_triton_name(dtype):
    spec = ModelSpec("m", 1, None, (TensorSpec("x", dtype, (-1, 2)),), (TensorSpec("y", dtype, (-1,)),))
    config = model_config(spec, 8, 1)
    assert config["input"][0]["data_type"] == config["output"][0]["data_type"] == BY_NAME[dtype].triton
    assert config["input"][0]["data_type"] == "TYPE_" + {"string": "STRING", "float16": "FP16", "float32": "FP32",
                                                         "float64": "FP64"}.get(dtype, dtype.upper())


def test_latest_versions():
    spec = ModelSpec("m", 1, None, (IMAGES,), (LABELS,), ModelConfig(version_policy=VersionPolicy(latest=3)))
    assert model_config(spec, 8, 1)["version_policy"] == {"latest": {"num_versions": 3}}


@pytest.mark.parametrize(("spec", "max_batch_size"), [
    (ModelSpec("m", 1, None, (TensorSpec("x", "float32", (1, 784)),), (LABELS,)), 64),  # a fixed first dimension
    (MNIST, 0),
])
def test_a_model_that_does_not_batch_has_its_full_shapes(spec, max_batch_size):
    config = model_config(spec, max_batch_size, 5)
    assert config["max_batch_size"] == 0 and "dynamic_batching" not in config
    assert config["input"][0]["dims"] == list(spec.inputs[0].shape)
    assert config["output"][0]["dims"] == [-1]


def test_the_index_says_which_versions_can_answer_and_why_not():
    entries = [IndexEntry("mnist", 3, True), IndexEntry("iris", None, False, "no version in the repository"),
               IndexEntry("mnist", 2, False, "no live worker serves it")]
    assert repository_index(entries) == [
        {"name": "iris", "state": "UNAVAILABLE", "reason": "no version in the repository"},
        {"name": "mnist", "version": "2", "state": "UNAVAILABLE", "reason": "no live worker serves it"},
        {"name": "mnist", "version": "3", "state": "READY", "reason": ""},
    ]
    assert repository_index(entries, ready_only=True) == [
        {"name": "mnist", "version": "3", "state": "READY", "reason": ""}]
    assert repository_index([]) == []
