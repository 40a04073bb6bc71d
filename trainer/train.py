"""The training job end to end: load and check the data, train, export, verify the export the seed's way,
report, and publish the result as the next version under save_path (MODEL_DIR)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import numpy as np

from trainer import data
from trainer.errors import TrainerError
from trainer.params import TrainParams

#: The exported graph may disagree with Keras on at most this share of test images (float rounding
#: between Keras' and the graph's arithmetic can flip a near tie); more means the export is wrong.
MAX_EXPORT_DISAGREEMENT = 0.001


def train_and_export(params: TrainParams, *, verbose: bool = True) -> Path:
    """Train on ``params.data_path``, export, and return the new version's directory
    (``<save_path>/<version>``). With ``verbose``, prints a progress bar, the cost per epoch and the
    test accuracy. Raises TrainerError for bad data or an unwritable save_path; nothing is published
    unless everything succeeded.
    """
    started = time.monotonic()
    mnist = data.load_mnist(params.data_path, download_missing=params.download)
    training, testing = mnist.training, mnist.testing
    train_images, train_labels = training.images, training.labels
    if params.max_train_images is not None:
        train_images, train_labels = train_images[: params.max_train_images], train_labels[: params.max_train_images]

    # TensorFlow takes seconds to import: only now, once parameters and data are known to be good.
    import keras
    import tensorflow as tf

    from trainer import export, model, networks, publish, report

    say = print if verbose else _silent
    say(
        f"Training {params.arch} {networks.describe(params)} on "
        f"{len(train_images)} images ({mnist.source}) for {params.epochs} epochs, testing on {len(testing.images)}",
        flush=True,
    )
    trained = model.train(params, train_images, train_labels, testing.images, testing.labels, verbose=verbose)
    keras_labels = model.predict_labels(trained.model, testing.images)
    say("Optimization finished", flush=True)

    model_dir = Path(params.save_path)
    try:
        with publish.staging_dir(model_dir) as staged:
            export.write_saved_model(trained.model, staged)
            labels, probabilities = export.run_go_server_style(staged, testing.images)
            _check_export(labels, probabilities, keras_labels, params.n_classes)
            metrics = report.classification_metrics(testing.labels, labels, params.n_classes)
            say(f"Accuracy: {metrics['test_accuracy']:.4f}", flush=True)
            metrics.update(
                keras_test_accuracy=float(np.mean(keras_labels == testing.labels)),
                architecture=f"{params.arch} {networks.describe(params)}",
                train_images=len(train_images),
                history=trained.history,
                params=params.to_dict(),
                data={"source": mnist.source, "sha256": {**training.checksums, **testing.checksums}},
                training_seconds=round(trained.training_seconds, 3),
                total_seconds=round(time.monotonic() - started, 3),
                tensorflow_version=tf.__version__,
                keras_version=keras.__version__,
                created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            )
            report.plot_training_curve(trained.history, staged / report.TRAINING_CURVE_FILE)
            report.plot_confusion_matrix(
                np.array(metrics["confusion_matrix"]), staged / report.CONFUSION_MATRIX_FILE
            )
            version_dir = publish.publish(staged, model_dir, lambda v: report.write_metrics(staged, metrics, v))
    except OSError as exc:
        raise TrainerError(f"cannot write the model under {model_dir}: {exc}") from None
    say(f"Exported version {version_dir.name}: {version_dir}", flush=True)
    return version_dir


def _check_export(labels: np.ndarray, probabilities: np.ndarray, keras_labels: np.ndarray, n_classes: int) -> None:
    """The exported graph must answer like the trained model, in the contract's shapes and types."""
    count = len(keras_labels)
    if labels.dtype != np.int64 or labels.shape != (count,):
        raise TrainerError(f"export check failed: inference gave {labels.dtype} {labels.shape}, not int64 ({count},)")
    if probabilities.shape != (count, n_classes) or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4):
        raise TrainerError(
            f"export check failed: probabilities {probabilities.shape} are not {count} rows of {n_classes} summing to 1"
        )
    for what, other in (("its probabilities", probabilities.argmax(axis=1)), ("Keras", keras_labels)):
        disagreements = int(np.count_nonzero(labels != other))
        if disagreements > MAX_EXPORT_DISAGREEMENT * count:
            raise TrainerError(
                f"export check failed: the SavedModel's labels disagree with {what} on {disagreements} of {count}"
            )


def _silent(*_args: object, **_kwargs: object) -> None:
    """print's stand-in when quiet."""
