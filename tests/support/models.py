"""Small SavedModels in the contract's shape, for worker tests that need a model to behave a set way.

``build_model`` writes ``<model_dir>/<version>`` as the trainer does (tag ``model``, ``inputdata`` ->
``inference``, a ``serving_default`` signature with probabilities and labels), atomically, with a
model that answers ``label`` for every image. It can also be slow (a loop of matrix products before
answering, to catch a worker mid-batch) or fail (an assertion on the pixels, to fail a batch).
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: The side of the square matrices a slow model multiplies.
MATRIX_SIZE = 512


def save_contract_model(model_dir: Path, version: int, logits_of: Callable) -> Path:
    """``<model_dir>/<version>``, written atomically: the contract's tag, tensor names and signature
    around ``logits_of(pixels)``, a TensorFlow function of the raw-pixel placeholder."""
    import tensorflow as tf

    v1 = tf.compat.v1
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=model_dir))
    os.rmdir(staging)
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        pixels = v1.placeholder(tf.float32, [None, 784], name="inputdata")
        logits = logits_of(pixels)
        probabilities = tf.nn.softmax(logits, name="probabilities")
        labels = tf.argmax(logits, 1, name="inference", output_type=tf.int64)
        sess.run(v1.global_variables_initializer())
        signature = v1.saved_model.predict_signature_def(
            inputs={"inputdata": pixels}, outputs={"probabilities": probabilities, "labels": labels})
        builder = v1.saved_model.Builder(str(staging))
        builder.add_meta_graph_and_variables(sess, ["model"], signature_def_map={"serving_default": signature})
        builder.save()
    target = model_dir / str(version)
    os.rename(staging, target)
    return target


def build_model(model_dir: Path, version: int, label: int, *, slow_seconds: float = 0.0,
                fail_when_brighter_than: int | None = None) -> Path:
    import tensorflow as tf

    slow_steps = busy_steps(slow_seconds) if slow_seconds else 0

    def logits_of(pixels):
        logits = tf.matmul(pixels / 255.0, tf.zeros([784, 10])) + tf.Variable(tf.one_hot(label, 10) * 10.0)
        if slow_steps:
            logits += 0.0 * busy_work(slow_steps)
        if fail_when_brighter_than is None:
            return logits
        check = tf.debugging.assert_less_equal(
            tf.reduce_max(pixels), float(fail_when_brighter_than), message="pixel too bright for this model")
        with tf.control_dependencies([check]):
            return tf.identity(logits)

    return save_contract_model(model_dir, version, logits_of)


def busy_steps(seconds: float) -> int:
    """How many of :func:`busy_work`'s products take about ``seconds`` in a worker on this machine.
    Counted eagerly, before a model's graph is built: inside it nothing can be timed."""
    return max(1, round(seconds * _matmuls_per_second()))


def busy_work(steps: int):
    """``steps`` matrix products (:func:`busy_steps`), data-dependent so nothing folds away: a
    tensor, to be added to a model's output times zero."""
    import tensorflow as tf

    size = MATRIX_SIZE
    matrix = tf.random.stateless_uniform([size, size], seed=[1, 2]) / size

    def body(i, acc):
        return i + 1, tf.matmul(acc, matrix)

    _, result = tf.while_loop(lambda i, _: i < steps, body, [tf.constant(0), tf.eye(size)])
    return tf.reduce_sum(result)


@functools.cache
def _matmuls_per_second(measure_s: float = 0.3) -> float:
    """How many of :func:`busy_work`'s products one thread of this machine does a second (a
    worker's TensorFlow runs one: TF_INTRA_OP_THREADS), measured once a process. Machines of this
    kind differ in speed by up to 2.5x, and a fixed count that took 3 s on one took half a second on
    another, under tests that must catch the batch while it runs. This process may use every core:
    the rate is divided among them, as if they shared the work perfectly."""
    import tensorflow as tf

    matrix = tf.random.stateless_uniform([MATRIX_SIZE, MATRIX_SIZE], seed=[1, 2]) / MATRIX_SIZE
    product = tf.matmul(tf.eye(MATRIX_SIZE), matrix)  # the first call pays for set-up: not timed
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < measure_s:
        product = tf.matmul(product, matrix)
        steps += 1
    product.numpy()
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1
    return steps / (time.perf_counter() - started) / threads
