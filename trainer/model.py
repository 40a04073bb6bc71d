"""Training the network ``params.arch`` names (``trainer.networks``) with Keras 3: softmax cross-entropy, Adam.

Differences from the seed, each because the seed's choice hurt: Glorot-uniform weights and zero biases
instead of N(0, 1) (which saturates and needs far more steps), the /255 scaling inside the model (so
raw pixels are its input, as at serving time), and a cosine-decayed learning rate.
"""

from __future__ import annotations

import dataclasses
import math
import time

import keras
import numpy as np

from trainer import networks
from trainer.params import TrainParams

#: Batches per call into TensorFlow: at 100 images a batch, the per-call Python overhead on 2 cores
#: costs about as much as the batch itself; 20 per call trains ~40% faster with identical results.
STEPS_PER_EXECUTION = 20
EVAL_BATCH_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class Trained:
    model: keras.Model
    #: Per epoch: train_loss, train_accuracy, test_loss, test_accuracy.
    history: dict[str, list[float]]
    training_seconds: float


def train(
    params: TrainParams,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    verbose: bool = True,
) -> Trained:
    """Train a fresh model, seeded by ``params.seed``, printing a progress bar and the seed's
    ``Epoch: 0001 cost= ...`` line per epoch when ``verbose``."""
    keras.backend.clear_session()  # a long-lived process (a test session) trains many models
    keras.utils.set_random_seed(params.seed)
    model = networks.build(params)
    steps = params.epochs * math.ceil(len(train_images) / params.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(params.learning_rate, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    started = time.monotonic()
    # The test set is only watched (for the training curve), never used to choose anything.
    fit = model.fit(
        train_images.astype(np.float32),
        train_labels,
        batch_size=params.batch_size,
        epochs=params.epochs,
        validation_data=(test_images.astype(np.float32), test_labels),
        validation_batch_size=EVAL_BATCH_SIZE,
        # The bar given first, so that it ends its line before the cost line is printed.
        callbacks=[keras.callbacks.ProgbarLogger(), _SeedStyleCost()] if verbose else [],
        verbose=1 if verbose else 0,
    )
    seconds = time.monotonic() - started
    history = {
        "train_loss": fit.history["loss"],
        "train_accuracy": fit.history["accuracy"],
        "test_loss": fit.history["val_loss"],
        "test_accuracy": fit.history["val_accuracy"],
    }
    return Trained(model, {key: [float(v) for v in values] for key, values in history.items()}, seconds)


def predict_labels(model: keras.Model, images: np.ndarray) -> np.ndarray:
    logits = model.predict(images.astype(np.float32), batch_size=EVAL_BATCH_SIZE, verbose=0)
    return np.argmax(logits, axis=1)


class _SeedStyleCost(keras.callbacks.Callback):
    """Prints the seed's per-epoch line, which people and scripts grep for."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        print(f"Epoch: {epoch + 1:04d} cost= {(logs or {})['loss']:.9f}", flush=True)
