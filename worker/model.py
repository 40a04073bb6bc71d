"""One loaded SavedModel version and the one call a worker makes on it, whatever its signature.

Which meta graph is loaded and what its signature takes and gives is ``worker.signatures``'; the
signature served is the config's, ``serving_default`` unless config.json names another.

A call feeds every input and fetches every output in one run of a TF1 session callable
(``worker.session_callable``), the path the Go server took and the cheapest per call TensorFlow
offers. TensorFlow 2 SavedModels load into that session as TF Serving loads them: their functions
become (Stateful)PartitionedCall ops and the saver they carry restores their variables. String
tensors need no other path: the callable takes NumPy arrays of bytes (object, ``S`` or ``U``; str
goes in as UTF-8) and gives object arrays of bytes back.

A model that loads but cannot answer is refused at load, by a batch of two zeros that must give
every output a first dimension of 2. That is what catches a Keras 3 model saved inside a tf.Module:
its functions read variables its saver does not restore, in TF Serving too;
``model.export`` writes one that serves.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

from inferq.model_config import ModelConfig
from inferq.model_spec import ANY, ModelSpec, TensorSpec
from inferq.repository import version_dir
from worker.model_errors import InputMismatch, ModelCallError
from worker.session_callable import session_callable
from worker.signatures import ModelLoadError, meta_graph_tag, served_tensors

log = logging.getLogger(__name__)

#: A model's config where it has no config.json (a frozen dataclass: one instance serves every default).
DEFAULT_CONFIG = ModelConfig()
#: The batch the load-time test call runs.
TEST_BATCH = 2


class LoadedModel:
    def __init__(self, path: str | Path, name: str, version: int, *, config: ModelConfig = DEFAULT_CONFIG,
                 intra_op_threads: int = 0, inter_op_threads: int = 0) -> None:
        self.path = str(path)
        #: The meta graph's tag: ``serve``, or ``model`` where there is no ``serve`` one.
        self.tag = tag = meta_graph_tag(self.path)
        graph = tf.Graph()
        session_config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=intra_op_threads, inter_op_parallelism_threads=inter_op_threads
        )
        self._session = tf.compat.v1.Session(graph=graph, config=session_config)
        try:
            with graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(self._session, [tag], self.path)
            signature, inputs, outputs = served_tensors(meta_graph, graph, config.signature)
            self._run = session_callable(
                self._session, [spec.tensor_name for spec in inputs], [spec.tensor_name for spec in outputs]
            )
        except (OSError, ValueError, KeyError, RuntimeError, tf.errors.OpError) as exc:
            self._session.close()
            raise ModelLoadError(f"{self.path}: {exc}") from exc
        # Everything a call needs, worked out once: the feed order, and each input's NumPy type and
        # shape, with the sizes after the batch's where they are all fixed (most models': one tuple
        # comparison checks them).
        self._feeds = tuple(
            (spec.name, _numpy_type(spec.dtype), spec.shape,
             spec.shape[1:] if spec.shape and spec.shape[0] == ANY and ANY not in spec.shape[1:] else None)
            for spec in inputs
        )
        self._output_names = tuple(spec.name for spec in outputs)
        try:
            shapes = self._check(inputs)
        except ModelLoadError:
            self._session.close()
            raise
        # An output of unknown rank (a TF1 op without shape inference) has the rank the test call
        # showed, and no size known.
        outputs = tuple(spec if spec.shape else dataclasses.replace(spec, shape=(ANY,) * len(shapes[spec.name]))
                        for spec in outputs)
        self.spec = ModelSpec(name, version, signature, inputs, outputs, config)

    @property
    def version(self) -> int:
        return self.spec.version

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of the signature, by name, for ``inputs`` (every input, by name), in one call.

        Each array is cast to its input's type. Strings go as object arrays of bytes (str is sent as
        UTF-8), or as NumPy's ``S`` and ``U`` arrays, which drop trailing NUL bytes.
        """
        if len(inputs) != len(self._feeds):
            raise InputMismatch(self._wrong_inputs(inputs))
        arrays = []
        for name, numpy_type, spec_shape, fixed_rest in self._feeds:
            try:
                value = inputs[name]
            except (KeyError, IndexError, TypeError):  # the last two: not a mapping (an array, as predict once took)
                raise InputMismatch(self._wrong_inputs(inputs)) from None
            try:
                array = _as_strings(value) if numpy_type is object else np.asarray(value, numpy_type)
            except (TypeError, ValueError) as exc:
                raise InputMismatch(f"input {name!r}: {exc}") from exc
            shape = array.shape
            if fixed_rest is not None:
                fits = len(shape) == len(spec_shape) and shape[1:] == fixed_rest
            else:
                fits = _fits(shape, spec_shape)
            if not fits:
                raise InputMismatch(f"input {name!r} takes shape {list(spec_shape)}, "
                                     f"got {list(shape)} (-1: any size)")
            arrays.append(array)
        try:
            fetched = self._run(*arrays)
        except tf.errors.OpError as exc:  # an object array holding other than bytes or str too: InternalError
            raise ModelCallError(_first_words(exc.message)) from exc
        return dict(zip(self._output_names, fetched, strict=True))

    def _wrong_inputs(self, inputs: object) -> str:
        wanted = [name for name, *_ in self._feeds]
        if not isinstance(inputs, Mapping):
            return f"inputs must map each input's name to its array, not be a {type(inputs).__name__}: " \
                   f"the model takes {', '.join(wanted)}"
        missing = [name for name in wanted if name not in inputs]
        unknown = sorted(set(inputs) - set(wanted))
        problems = ([f"no input {', '.join(map(repr, missing))}"] if missing else []) + \
                   ([f"no such input {', '.join(map(repr, unknown))}"] if unknown else [])
        return f"{'; '.join(problems)}: the model takes {', '.join(wanted)}"

    def _check(self, inputs: tuple[TensorSpec, ...]) -> dict[str, tuple[int, ...]]:
        """Refuse a model that loads but cannot answer a batch: every output must have one row per row fed.

        Returns the shape each output had.
        """
        batch = {spec.name: _test_input(spec) for spec in inputs}
        try:
            outputs = self.predict(batch)
        except ModelCallError as exc:
            raise ModelLoadError(f"{self.path}: a test batch of {TEST_BATCH} failed: {exc}") from exc
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != TEST_BATCH:
                raise ModelLoadError(f"{self.path}: output {name!r} has shape {list(array.shape)} for a batch of "
                                     f"{TEST_BATCH}: its first dimension must be the batch's")
        return {name: array.shape for name, array in outputs.items()}


def _fits(shape: tuple[int, ...], spec_shape: tuple[int, ...]) -> bool:
    """Whether an array's shape is one the spec allows (:data:`ANY` matching any size)."""
    if len(shape) != len(spec_shape):
        return False
    return all(size in (ANY, given) for given, size in zip(shape, spec_shape, strict=True))


def _numpy_type(type_name: str) -> type | np.dtype:
    """NumPy's type for a TensorFlow type name; ``object`` for strings (arrays of bytes)."""
    return tf.dtypes.as_dtype(type_name).as_numpy_dtype


def _as_strings(value: object) -> np.ndarray:
    array = value if isinstance(value, np.ndarray) else np.asarray(value, object)
    if array.dtype.kind not in "OSU":
        raise TypeError(f"takes strings (bytes), got {array.dtype}")
    return array


def _test_input(spec: TensorSpec) -> np.ndarray:
    """Zeros (empty strings) of the test batch's size, 1 where a later dimension may be any size."""
    shape = (TEST_BATCH, *(1 if size == ANY else size for size in spec.shape[1:]))
    if spec.dtype == "string":
        return np.full(shape, b"", object)
    return np.zeros(shape, _numpy_type(spec.dtype))


def _first_words(message: str) -> str:
    """TensorFlow's error without the graph-node lines it appends: ``[[{{node ...}}]]``."""
    text = " ".join(message.replace("Graph execution error:", "").split())
    return text.split(" [[", 1)[0][:300]


def load_version(model_dir: str | Path, name: str, version: int, *, config: ModelConfig = DEFAULT_CONFIG,
                 **threads: int) -> LoadedModel:
    model = LoadedModel(version_dir(model_dir, version), name, version, config=config, **threads)
    log.info("loaded model %s version %d from %s (meta graph %r, signature %s): inputs %s, outputs %s", name,
             version, model.path, model.tag, model.spec.signature, model.spec.inputs, model.spec.outputs)
    return model
