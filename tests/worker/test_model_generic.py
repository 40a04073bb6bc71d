"""worker.model serves any SavedModel's signature: its TF1 session answers as TensorFlow 2's own loader does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from inferq import model_config
from inferq.model_config import ModelConfig
from inferq.model_spec import TensorSpec
from tests.support import saved_models
from tests.support.go_server_model import build_go_server_model, go_server_predict
from tests.support.models import build_model
from worker.model import LoadedModel, ModelCallError, ModelLoadError, load_version
from worker.model_errors import InputMismatch

#: Each model's (name, dtype, shape) inputs and outputs, sorted by name, as its spec must list them.
SPECS = {
    "mnist_like": ([("image", "uint8", (-1, 28, 28, 1))], [("scores", "float32", (-1, 10))]),
    "cifar_like": ([("image", "float32", (-1, 32, 32, 3))], [("probabilities", "float32", (-1, 10))]),
    "tabular": ([("features", "float32", (-1, 4))],
                [("class_probabilities", "float32", (-1, 3)), ("value", "float32", (-1, 1))]),
    "two_inputs": ([("ids", "int64", (-1, 16)), ("weights", "float32", (-1, 16))],
                   [("count", "int32", (-1,)), ("score", "float32", (-1,))]),
    "text": ([("text", "string", (-1,))], [("echo", "string", (-1,)), ("length", "int32", (-1,))]),
}


@pytest.fixture(scope="session")
def repository(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("repository")
    saved_models.build_all(repo)
    return repo


def load(repo: Path, name: str, **config: object) -> LoadedModel:
    return load_version(repo / name, name, 1, config=dataclasses.replace(model_config.load(repo / name), **config),
                        intra_op_threads=1, inter_op_threads=1)


@pytest.mark.parametrize("name", list(saved_models.BUILDERS))
def test_each_model_answers_as_tensorflow_2_does(repository: Path, name: str) -> None:
    model = load(repository, name)
    for batch in (1, 7):
        inputs = saved_models.sample_inputs(name, batch, random_seed=batch)
        got = model.predict(inputs)
        expected = saved_models.offline_outputs(repository / name / "1", inputs)
        assert set(got) == set(expected)
        for key, want in expected.items():
            assert got[key].dtype == want.dtype, key
            if want.dtype.kind == "f":
                np.testing.assert_allclose(got[key], want, rtol=1e-5, err_msg=key)
            else:
                np.testing.assert_array_equal(got[key], want, err_msg=key)


@pytest.mark.parametrize("name", list(saved_models.BUILDERS))
def test_each_spec_lists_the_signatures_tensors(repository: Path, name: str) -> None:
    model = load(repository, name)
    spec = model.spec
    assert model.tag == "serve"
    inputs, outputs = SPECS[name]
    assert (spec.name, spec.version, spec.signature) == (name, 1, "serving_default")
    assert [(t.name, t.dtype, t.shape) for t in spec.inputs] == inputs
    assert [(t.name, t.dtype, t.shape) for t in spec.outputs] == outputs
    assert all(":" in t.tensor_name for t in spec.inputs + spec.outputs)  # graph tensor names, as TF Serving shows
    assert spec.config == model_config.load(repository / name)


def test_the_config_json_written_beside_a_model_is_the_one_it_needs(repository: Path) -> None:
    config = model_config.load(repository / "cifar_like")
    assert config.labels == saved_models.CIFAR_CLASSES
    assert (config.image.channels, config.image.scale) == (3, "-1..1")
    assert model_config.load(repository / "mnist_like").labels[9] == "nine"
    assert model_config.load(repository / "tabular").labels == ("setosa", "versicolor", "virginica")
    assert not [entry.name for entry in (repository / "tabular").iterdir() if entry.name.startswith(".tmp-")]


def test_strings_go_in_as_bytes_or_str_and_come_back_as_bytes(repository: Path) -> None:
    model = load(repository, "text")
    for text in ([b"ab", "caf\u00e9".encode()], ["ab", "caf\u00e9"], np.array(["ab", "caf\u00e9"])):
        got = model.predict({"text": text})
        assert got["echo"].tolist() == [b"AB", "CAF\u00e9".encode()]
        assert got["length"].tolist() == [2, 5]
    with pytest.raises(ModelCallError, match="^Unsupported object type int$"):
        model.predict({"text": np.array([b"ab", 3], object)})
    with pytest.raises(InputMismatch, match="'text': takes strings"):
        model.predict({"text": np.array([1.5])})


def test_each_input_is_cast_to_its_type(repository: Path) -> None:
    model = load(repository, "two_inputs")
    inputs = saved_models.sample_inputs("two_inputs", 3, random_seed=1)
    as_given = {"ids": inputs["ids"].astype(np.int32), "weights": inputs["weights"].astype(np.float64)}
    np.testing.assert_array_equal(model.predict(as_given)["count"], model.predict(inputs)["count"])


def test_a_missing_or_unknown_input_is_a_mismatch_naming_the_inputs(repository: Path) -> None:
    model = load(repository, "two_inputs")
    inputs = saved_models.sample_inputs("two_inputs", 2)
    with pytest.raises(InputMismatch, match="no input 'weights'.*takes ids, weights"):
        model.predict({"ids": inputs["ids"]})
    with pytest.raises(InputMismatch, match="no such input 'idz'"):
        model.predict({"idz": inputs["ids"], "weights": inputs["weights"]})
    with pytest.raises(InputMismatch, match="inputs must map each input's name to its array, not be a ndarray"):
        model.predict(inputs["ids"][:1])  # the old call: predict(pixels)


def test_an_input_of_the_wrong_shape_is_a_mismatch_the_client_may_be_told(repository: Path) -> None:
    model = load(repository, "mnist_like")
    with pytest.raises(InputMismatch, match=r"'image' takes shape \[-1, 28, 28, 1\], got \[2, 784\]"):
        model.predict({"image": np.zeros((2, 784), np.uint8)})


def test_a_missing_signature_is_refused_naming_those_the_model_has(repository: Path) -> None:
    with pytest.raises(ModelLoadError, match="no signature 'predict'; the signatures it has: 'serving_default'"):
        load(repository, "tabular", signature="predict")


def test_the_signature_the_config_names_is_served(tmp_path: Path) -> None:
    import tensorflow as tf

    class TwoSignatures(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def double(self, x):
            return {"y": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def negate(self, x):
            return {"minus": -x}

    module = TwoSignatures()
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.double,
                                                                 "negate": module.negate})
    model = load_version(tmp_path, "two", 1, config=ModelConfig(signature="negate"))
    assert model.spec.signature == "negate"
    assert model.predict({"x": np.array([1.5, -2.0])})["minus"].tolist() == [-1.5, 2.0]
    with pytest.raises(ModelLoadError, match="the signatures it has: 'negate', 'serving_default'"):
        load_version(tmp_path, "two", 1, config=ModelConfig(signature="classify"))


def test_a_model_that_cannot_answer_a_test_batch_is_refused(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    # A Keras 3 model saved inside a tf.Module: its variables are not restored by a TF1 loader
    # (TF Serving cannot run it either), so it loads, and fails its first call.
    class Wrapper(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.model(x)}

    wrapper = Wrapper()
    tf.saved_model.save(wrapper, str(tmp_path / "1"), signatures={"serving_default": wrapper.serve})
    with pytest.raises(ModelLoadError, match="a test batch of 2 failed: .*variable"):
        load_version(tmp_path, "wrapped", 1)


def test_an_output_without_the_batch_dimension_is_refused(tmp_path: Path) -> None:
    import tensorflow as tf

    class Total(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"total": tf.reduce_sum(x), "rows": tf.reduce_sum(x, axis=1)}

    module = Total()
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    with pytest.raises(ModelLoadError, match="output 'total' has shape \\[\\] for a batch of 2"):
        load_version(tmp_path, "total", 1)


def test_a_model_without_a_serve_or_model_meta_graph_is_refused(tmp_path: Path) -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.placeholder(tf.float32, [None], name="x")
        builder = tf.compat.v1.saved_model.Builder(str(tmp_path / "1"))
        builder.add_meta_graph_and_variables(session, ["train"])
        builder.save()
    with pytest.raises(ModelLoadError, match=r"no meta graph tagged 'serve' or 'model'; its tag sets: \[\['train'\]\]"):
        load_version(tmp_path, "train_only", 1)


def test_the_trainer_style_mnist_model_still_serves(tmp_path: Path) -> None:
    model = load_version(build_model(tmp_path, 3, label=4).parent, "mnist", 3)
    assert (model.version, model.tag) == (3, "model")
    assert model.spec.signature == "serving_default"
    assert model.spec.inputs == (TensorSpec("inputdata", "float32", (-1, 784), "inputdata:0"),)
    assert model.spec.outputs == (TensorSpec("labels", "int64", (-1,), "inference:0"),
                                  TensorSpec("probabilities", "float32", (-1, 10), "probabilities:0"))
    pixels = np.random.default_rng(0).integers(0, 256, (5, 784), np.uint8)
    got = model.predict({"inputdata": pixels})
    assert got["labels"].tolist() == [4] * 5
    assert got["probabilities"].shape == (5, 10)
    np.testing.assert_array_equal(got["probabilities"].argmax(axis=1), got["labels"])


def test_the_trainers_export_is_loaded_by_its_serve_meta_graph(tmp_path: Path) -> None:
    from bench.models import write_wide_mlp

    model_dir = write_wide_mlp(tmp_path / "wide", width=16, depth=1)
    model = load_version(model_dir, "wide_mlp", 1)
    assert model.tag == "serve"
    pixels = np.random.default_rng(1).integers(0, 256, (6, 784), np.uint8)
    got = model.predict({"inputdata": pixels})
    # The meta graph tagged ``model`` (the Go server's) answers the same from the same variables.
    np.testing.assert_array_equal(got["labels"], go_server_predict(model_dir / "1", pixels))


def test_a_model_whose_batch_fails_gives_tensorflows_message_alone(tmp_path: Path) -> None:
    model = load_version(build_model(tmp_path, 1, label=2, fail_when_brighter_than=200).parent, "mnist", 1)
    with pytest.raises(ModelCallError) as raised:
        model.predict({"inputdata": np.full((2, 784), 255, np.uint8)})
    assert "pixel too bright for this model" in str(raised.value)
    assert "[[" not in str(raised.value) and "node" not in str(raised.value)
    assert not isinstance(raised.value, InputMismatch)  # the model's own failure: not told to clients as it is


def test_the_seed_go_servers_model_still_serves(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    images, labels = rng.integers(0, 256, (200, 28, 28), np.uint8), rng.integers(0, 10, 200)
    build_go_server_model(tmp_path / "1", images, labels, steps=3)
    model = load_version(tmp_path, "mnist", 1)
    assert (model.tag, model.spec.signature) == ("model", None)
    assert model.spec.inputs == (TensorSpec("inputdata", "float32", (-1, 784), "inputdata:0"),)
    assert model.spec.outputs == (TensorSpec("labels", "int64", (-1,), "inference:0"),)
    pixels = images[:9].reshape(-1, 784)
    np.testing.assert_array_equal(model.predict({"inputdata": pixels})["labels"],
                                  go_server_predict(tmp_path / "1", pixels))


def test_a_graph_with_neither_a_signature_nor_the_go_servers_tensors_is_refused(tmp_path: Path) -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.placeholder(tf.float32, [None], name="x")
        builder = tf.compat.v1.saved_model.Builder(str(tmp_path / "1"))
        builder.add_meta_graph_and_variables(session, ["serve"])
        builder.save()
    with pytest.raises(ModelLoadError, match="no signature 'serving_default'; the signatures it has: none"):
        load_version(tmp_path, "bare", 1)
