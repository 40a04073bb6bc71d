"""A tiny training run on real MNIST, exported, and reloaded the way the seed's Go server loaded it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inferq import mnist_contract, repository
from trainer import data, mnist_files, report
from trainer.errors import TrainerError
from trainer.params import TrainParams
from trainer.train import train_and_export

#: A few seconds of training that still recognises most digits (about 88% here).
TINY = {"n_hidden_1": 32, "n_hidden_2": 32, "epochs": 2, "max_train_images": 5000, "batch_size": 50}


@pytest.fixture(scope="module")
def tiny_params(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> TrainParams:
    model_dir = tmp_path_factory.mktemp("models")
    return TrainParams(**TINY, save_path=str(model_dir), data_path=str(mnist_dir), download=False)


@pytest.fixture(scope="module")
def version_1(tiny_params: TrainParams) -> Path:
    return train_and_export(tiny_params, verbose=False)


@pytest.fixture(scope="module")
def test_split(mnist_dir: Path) -> data.Split:
    return data.load_idx_split(mnist_dir, "testing")


def go_server_style_labels(export_dir: Path, images: np.ndarray) -> np.ndarray:
    """What the seed's Go server did: load with tags ["model"], feed ``inputdata``, fetch ``inference``."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.saved_model.loader.load(session, ["model"], str(export_dir))
        return session.run("inference:0", {"inputdata:0": images.astype(np.float32)})


def test_first_run_publishes_version_1_and_nothing_else(version_1: Path, tiny_params: TrainParams) -> None:
    model_dir = Path(tiny_params.save_path)
    assert version_1 == model_dir / "1"
    assert repository.versions(model_dir) == [1]
    assert [entry.name for entry in model_dir.iterdir()] == ["1"]


def test_go_server_style_load_answers_digits_from_raw_pixels(version_1: Path, test_split: data.Split) -> None:
    labels = go_server_style_labels(version_1, test_split.images[:1000])
    assert labels.shape == (1000,)
    assert labels.dtype == np.int64
    assert np.mean(labels == test_split.labels[:1000]) > 0.8


def test_meta_graphs_are_tagged_model_and_serve_with_the_signature(version_1: Path) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((version_1 / repository.SAVED_MODEL_FILE).read_bytes())
    assert [list(meta.meta_info_def.tags) for meta in saved.meta_graphs] == [["model"], ["serve"]]
    for meta in saved.meta_graphs:
        signature = meta.signature_def["serving_default"]
        assert set(signature.inputs) == {"inputdata"}
        assert signature.inputs["inputdata"].name == "inputdata:0"
        assert [dim.size for dim in signature.inputs["inputdata"].tensor_shape.dim] == [-1, 784]
        assert set(signature.outputs) == {"probabilities", "labels"}
        assert signature.outputs["labels"].name == "inference:0"
        assert [dim.size for dim in signature.outputs["probabilities"].tensor_shape.dim] == [-1, 10]


def test_serve_tag_signature_gives_probabilities_that_agree_with_the_labels(
    version_1: Path, test_split: data.Split
) -> None:
    import tensorflow as tf

    images = test_split.images[:200].astype(np.float32)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_1))
        signature = meta.signature_def["serving_default"]
        feed = {signature.inputs["inputdata"].name: images}
        probabilities, labels = session.run(
            [signature.outputs["probabilities"].name, signature.outputs["labels"].name], feed
        )
    assert probabilities.shape == (200, 10)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), labels)


def test_metrics_json_describes_the_version(version_1: Path, tiny_params: TrainParams, test_split: data.Split) -> None:
    metrics = json.loads((version_1 / mnist_contract.METRICS_FILE).read_text())
    labels = go_server_style_labels(version_1, test_split.images)
    assert metrics["version"] == 1
    assert metrics["test_accuracy"] == pytest.approx(float(np.mean(labels == test_split.labels)))
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10)
    np.testing.assert_array_equal(matrix, report.confusion_matrix(test_split.labels, labels, 10))
    assert metrics["per_class"]["9"]["recall"] == pytest.approx(matrix[9, 9] / matrix[9].sum())
    assert metrics["per_class"]["9"]["precision"] == pytest.approx(matrix[9, 9] / matrix[:, 9].sum())
    assert metrics["params"] == tiny_params.to_dict()
    assert metrics["train_images"] == 5000
    assert metrics["data"]["sha256"] == {f"{name}.gz": mnist_files.SHA256[name] for name in mnist_files.ALL_FILES}
    assert metrics["training_seconds"] > 0
    assert len(metrics["history"]["test_accuracy"]) == 2
    assert {"tensorflow_version", "keras_version", "created"} <= set(metrics)


@pytest.mark.parametrize("name", [report.TRAINING_CURVE_FILE, report.CONFUSION_MATRIX_FILE])
def test_plots_are_written_beside_the_model(version_1: Path, name: str) -> None:
    with Image.open(version_1 / name) as image:
        assert image.format == "PNG"
        assert image.width > 300 and image.height > 300


def test_a_run_that_fails_midway_publishes_nothing(
    version_1: Path, tiny_params: TrainParams, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = Path(tiny_params.save_path)
    staged_contents: list[str] = []

    def fail_midway(counts: np.ndarray, path: Path) -> None:
        staged_contents.extend(sorted(entry.name for entry in path.parent.iterdir()))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "plot_confusion_matrix", fail_midway)
    quick = TrainParams(**{**tiny_params.to_dict(), "epochs": 1, "max_train_images": 1000})
    with pytest.raises(TrainerError, match="cannot write the model under .*No space left on device"):
        train_and_export(quick, verbose=False)
    assert repository.SAVED_MODEL_FILE in staged_contents  # it failed with a whole SavedModel written
    assert repository.versions(model_dir) == [1]
    assert [entry.name for entry in model_dir.iterdir()] == ["1"]
