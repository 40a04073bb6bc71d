"""A TF1 session callable built from ``CallableOptions``: the one place inferq uses TensorFlow's
private API (``Session._make_callable_from_options``, the path Keras' TF1 backend used).

Given a feed list, the public ``Session.make_callable`` runs every call through ``Session.run``'s
feed and fetch handling in Python; the callable built here goes straight to the C++ session, at a
fraction of the CPU a call (docs/benchmarks.md).
Written for the TensorFlow versions in :data:`TESTED_TENSORFLOW`;
``tests/contracts/test_tensorflow.py`` fails, naming what to re-check, when TensorFlow moves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2

#: Major.minor versions of TensorFlow this module was written and tested for.
TESTED_TENSORFLOW = ("2.21",)

#: What of TensorFlow's this module relies on beyond its public API, for the contract test.
TENSORFLOW_INTERNALS = ("tf.compat.v1.Session._make_callable_from_options(CallableOptions)",)


def session_callable(session: tf.compat.v1.Session, feeds: Sequence[str],
                     fetches: Sequence[str]) -> Callable[..., list[np.ndarray]]:
    """``run(*arrays)``: the ``fetches`` (tensor names) for arrays fed to ``feeds``, in order."""
    options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
    return session._make_callable_from_options(options)
