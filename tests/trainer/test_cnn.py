"""The CNN: two steps of training on a sample, exported under the MLP's contract, served by the worker's loader."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from inferq import mnist_contract, repository
from trainer import data, report
from trainer.params import ARCHS, TrainParams
from trainer.train import train_and_export

#: 256 images in batches of 128: two steps, enough to tell a working graph from a broken one.
TINY_CNN = {"arch": "cnn", "epochs": 1, "max_train_images": 256, "batch_size": 128}
#: Every pass over the test split runs the CNN; a slice of it checks the same things in a fraction of the time.
TEST_IMAGES = 500


@pytest.fixture(scope="module")
def cnn_dir(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    model_dir = tmp_path_factory.mktemp("cnn-models")
    params = TrainParams(**TINY_CNN, save_path=str(model_dir), data_path=str(mnist_dir), download=False)
    load_mnist = data.load_mnist

    def with_a_small_test_split(*args: object, **kwargs: object) -> data.Mnist:
        mnist = load_mnist(*args, **kwargs)
        testing = mnist.testing
        small = dataclasses.replace(testing, images=testing.images[:TEST_IMAGES], labels=testing.labels[:TEST_IMAGES])
        return dataclasses.replace(mnist, testing=small)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "load_mnist", with_a_small_test_split)
        train_and_export(params, verbose=False)
    return model_dir


@pytest.fixture(scope="module")
def test_split(mnist_dir: Path) -> data.Split:
    split = data.load_idx_split(mnist_dir, "testing")
    return dataclasses.replace(split, images=split.images[:TEST_IMAGES], labels=split.labels[:TEST_IMAGES])


def test_every_arch_has_a_network() -> None:
    from trainer import networks

    assert set(networks.BUILDERS) == set(ARCHS)


def test_the_workers_loader_finds_the_contracts_tensors(cnn_dir: Path) -> None:
    from inferq.model_spec import TensorSpec
    from worker.model import load_version

    assert repository.versions(cnn_dir) == [1]
    model = load_version(cnn_dir, "mnist_cnn", 1, intra_op_threads=1, inter_op_threads=1)
    assert model.spec.signature == "serving_default"
    assert model.spec.inputs == (TensorSpec("inputdata", "float32", (-1, 784), "inputdata:0"),)
    assert model.spec.outputs == (
        TensorSpec("labels", "int64", (-1,), "inference:0"),
        TensorSpec("probabilities", "float32", (-1, 10), "probabilities:0"),
    )


def test_served_from_raw_pixels_it_answers_as_keras_did(cnn_dir: Path, test_split: data.Split) -> None:
    from worker.model import load_version

    answers = load_version(cnn_dir, "mnist_cnn", 1).predict({"inputdata": test_split.images})
    labels, probabilities = answers["labels"], answers["probabilities"]
    assert labels.shape == (TEST_IMAGES,)
    assert labels.dtype == np.int64
    assert probabilities.shape == (TEST_IMAGES, 10)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), labels)
    # The trainer measured the Keras model on the same images: the graph must agree, scaling and
    # reshaping included, or the accuracies would differ.
    metrics = json.loads((cnn_dir / "1" / mnist_contract.METRICS_FILE).read_text())
    accuracy = float(np.mean(labels == test_split.labels))
    assert accuracy == pytest.approx(metrics["test_accuracy"])
    assert accuracy == pytest.approx(metrics["keras_test_accuracy"], abs=1 / TEST_IMAGES)
    assert accuracy > 0.2  # two steps already beat chance (0.1): the weights are the trained ones


def test_the_graph_convolves_an_image_made_inside_it(cnn_dir: Path) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((cnn_dir / "1" / repository.SAVED_MODEL_FILE).read_bytes())
    for meta in saved.meta_graphs:
        ops = {node.op for node in meta.graph_def.node}
        assert {"Conv2D", "MaxPool", "Reshape", "Relu"} <= ops


def test_metrics_and_plots_are_written_as_for_the_mlp(cnn_dir: Path) -> None:
    metrics = json.loads((cnn_dir / "1" / mnist_contract.METRICS_FILE).read_text())
    assert metrics["architecture"] == "cnn conv32-conv64-maxpool-dense128-dropout-10"
    assert metrics["params"]["arch"] == "cnn"
    assert metrics["train_images"] == 256
    assert metrics["test_images"] == TEST_IMAGES
    assert len(metrics["history"]["test_accuracy"]) == 1
    for name in (report.TRAINING_CURVE_FILE, report.CONFUSION_MATRIX_FILE):
        assert (cnn_dir / "1" / name).stat().st_size > 1000


def test_a_layer_the_export_does_not_know_is_refused_by_name(tmp_path: Path) -> None:
    import keras

    from trainer import export

    layers = [keras.Input((784,)), keras.layers.BatchNormalization(name="norm"), keras.layers.Dense(10)]
    model = keras.Sequential(layers)
    with pytest.raises(ValueError, match="cannot export layer 'norm': BatchNormalization"):
        export.write_saved_model(model, tmp_path / "out")
    softmax = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax", name="out")])
    with pytest.raises(ValueError, match="cannot export layer 'out': activation 'softmax'"):
        export.write_saved_model(softmax, tmp_path / "out")


def test_a_model_that_does_not_take_flat_pixels_is_refused(tmp_path: Path) -> None:
    import keras

    from trainer import export

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match=r"takes \(None, 28, 28, 1\), not \(None, 784\)"):
        export.write_saved_model(model, tmp_path / "out")
