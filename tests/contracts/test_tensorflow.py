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


def test_a_callable_takes_strings_as_numpy_arrays_and_gives_bytes():
    # worker.model feeds string inputs through the callable as they come (object arrays of bytes or
    # str, or NumPy's S and U arrays) rather than through Session.run.
    graph = tf.Graph()
    with graph.as_default():
        text = tf.compat.v1.placeholder(tf.string, [None], name="text")
        upper = tf.strings.upper(text, name="upper")
    with tf.compat.v1.Session(graph=graph) as session:
        run = session_callable(session, [text.name], [upper.name])
        for fed in (np.array([b"ab", b"\x00c"], object), np.array(["ab", "\x00c"], object), np.array(["ab", "\x00c"])):
            [out] = run(fed)
            assert out.dtype == object and out.tolist() == [b"AB", b"\x00C"], RECHECK
