"""worker/session_callable.py relies on a TensorFlow internal: this fails, naming it, when TensorFlow moves."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from worker.session_callable import TENSORFLOW_INTERNALS, TESTED_TENSORFLOW, session_callable

INSTALLED = ".".join(tf.__version__.split(".")[:2])
RECHECK = (f"worker/session_callable.py was written for TensorFlow {', '.join(TESTED_TENSORFLOW)} and relies on "
           f"{'; '.join(TENSORFLOW_INTERNALS)}; TensorFlow {tf.__version__} is installed: re-check it, then "
           "extend TESTED_TENSORFLOW")


def test_the_installed_tensorflow_is_one_the_seam_was_written_for():
    assert INSTALLED in TESTED_TENSORFLOW, RECHECK


def test_a_callable_from_options_feeds_and_fetches_by_tensor_name():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        doubled = tf.identity(x * 2.0, name="doubled")
        total = tf.reduce_sum(x, axis=1, name="total")
    with tf.compat.v1.Session(graph=graph) as session:
        assert hasattr(session, "_make_callable_from_options"), RECHECK
        run = session_callable(session, [x.name], [doubled.name, total.name])
        fed = np.arange(6, dtype=np.float32).reshape(2, 3)
        out_doubled, out_total = run(fed)
    np.testing.assert_array_equal(out_doubled, fed * 2, err_msg=RECHECK)
    np.testing.assert_array_equal(out_total, [3.0, 12.0], err_msg=RECHECK)
