"""What sits beside each version's SavedModel: metrics.json and two plots (training curve, confusion matrix).

Plots use matplotlib's object API with the Agg canvas: no display, no pyplot global state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from inferq import mnist_contract

TRAINING_CURVE_FILE = "training_curve.png"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"


def confusion_matrix(true_labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[i, j]: images of digit i predicted as j."""
    pairs = true_labels.astype(np.int64) * n_classes + predicted.astype(np.int64)
    return np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_metrics(true_labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict[str, object]:
    """Accuracy, per-class precision and recall (0.0 where a class was never predicted / never seen),
    and the confusion matrix, as JSON-ready values."""
    counts = confusion_matrix(true_labels, predicted, n_classes)
    hits = np.diag(counts).astype(np.float64)
    predicted_per_class = counts.sum(axis=0)
    true_per_class = counts.sum(axis=1)
    precision = np.divide(hits, predicted_per_class, out=np.zeros(n_classes), where=predicted_per_class > 0)
    recall = np.divide(hits, true_per_class, out=np.zeros(n_classes), where=true_per_class > 0)
    return {
        "test_accuracy": float(hits.sum() / max(len(true_labels), 1)),
        "test_images": len(true_labels),
        "per_class": {
            str(digit): {"precision": float(precision[digit]), "recall": float(recall[digit])}
            for digit in range(n_classes)
        },
        "confusion_matrix": counts.tolist(),
    }


def write_metrics(directory: Path, metrics: Mapping[str, object], version: int) -> Path:
    path = directory / mnist_contract.METRICS_FILE
    path.write_text(json.dumps({"version": version, **metrics}, indent=2) + "\n", encoding="utf-8")
    return path


def plot_training_curve(history: Mapping[str, list[float]], path: Path) -> None:
    """Loss and accuracy per epoch, on the training and the test set."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)
    epochs = range(1, len(history["train_loss"]) + 1)
    for axes, metric in zip(figure.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for split in ("train", "test"):
            axes.plot(epochs, history[f"{split}_{metric}"], marker="o", label=split)
        axes.set(title=metric, xlabel="epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.savefig(path, dpi=100)


def plot_confusion_matrix(counts: np.ndarray, path: Path) -> None:
    """The confusion matrix, with its counts written in the cells."""
    figure = Figure(figsize=(7, 6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes)
    n_classes = len(counts)
    axes.set(
        xticks=range(n_classes), yticks=range(n_classes), xlabel="predicted", ylabel="true",
        title=f"confusion matrix ({int(counts.sum())} test images)",
    )
    threshold = counts.max() / 2
    for (row, col), count in np.ndenumerate(counts):
        colour = "white" if count > threshold else "black"
        axes.text(col, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    figure.savefig(path, dpi=100)
