"""One loaded SavedModel version and the one call a worker makes on it.

Both kinds of model the contract allows load here: ours, whose ``serving_default`` signature
gives probabilities and labels, and the original Go server's, which has only the named tensors
``inputdata`` and ``inference``. Either runs as a TF1 session callable
(``worker.session_callable``), the path the Go server took and the cheapest per call TensorFlow
offers. Pixels are fed raw, 0..255, as the Go server fed them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from inferq import model_contract as contract
from inferq.model_spec import ANY, ModelSpec, TensorSpec
from worker.session_callable import session_callable

log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """A version directory that does not hold a model the contract allows."""


class ModelCallError(RuntimeError):
    """The model refused a batch; the message is TensorFlow's, without its graph dump."""


class LoadedModel:
    def __init__(self, path: str | Path, name: str, version: int, *, intra_op_threads: int = 0,
                 inter_op_threads: int = 0) -> None:
        self.path = str(path)
        self._graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=intra_op_threads, inter_op_parallelism_threads=inter_op_threads
        )
        self._session = tf.compat.v1.Session(graph=self._graph, config=config)
        try:
            with self._graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(self._session, [contract.TAG], str(path))
            signature = meta_graph.signature_def.get(contract.SIGNATURE)
            input_name, output_names = _tensor_names(signature)
            self._input = self._graph.get_tensor_by_name(input_name)
            outputs = {key: self._graph.get_tensor_by_name(name) for key, name in output_names.items()}
        except (OSError, ValueError, KeyError, RuntimeError, tf.errors.OpError) as exc:
            self._session.close()
            raise ModelLoadError(f"{path}: {exc}") from exc
        self.has_probabilities = contract.SIGNATURE_PROBABILITIES in outputs
        fetches = [outputs[contract.SIGNATURE_LABELS]]
        if self.has_probabilities:
            fetches.append(outputs[contract.SIGNATURE_PROBABILITIES])
        self._run = session_callable(self._session, [self._input.name], [tensor.name for tensor in fetches])
        self.spec = ModelSpec(
            name=name,
            version=version,
            signature=contract.SIGNATURE if signature is not None else None,
            inputs=(_spec(contract.SIGNATURE_INPUT, self._input),),
            outputs=tuple(_spec(key, tensor) for key, tensor in outputs.items()),
        )
        self._check()

    @property
    def version(self) -> int:
        return self.spec.version

    def predict(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (int64 ``[N]``) and probabilities (float32 ``[N, 10]`` or None) for uint8 ``[N, 784]``."""
        try:
            fetched = self._run(pixels.astype(np.float32))
        except tf.errors.OpError as exc:
            raise ModelCallError(_first_words(exc.message)) from exc
        return fetched[0], (fetched[1] if self.has_probabilities else None)

    def _check(self) -> None:
        """Refuse a model that loads but cannot answer a batch in the contract's shapes."""
        try:
            labels, probabilities = self.predict(np.zeros((2, contract.N_INPUT), np.uint8))
        except (ModelCallError, ValueError) as exc:
            raise ModelLoadError(f"{self.path}: a test batch failed: {exc}") from exc
        if labels.shape != (2,) or not np.issubdtype(labels.dtype, np.integer):
            raise ModelLoadError(f"{self.path}: labels of shape {labels.shape} and type {labels.dtype}")
        if probabilities is not None and probabilities.shape != (2, contract.N_CLASSES):
            raise ModelLoadError(f"{self.path}: probabilities of shape {probabilities.shape}")


def _tensor_names(signature: object) -> tuple[str, dict[str, str]]:
    """The input tensor and the outputs by contract key, from the signature or the original Go server's names."""
    if signature is None:
        return f"{contract.INPUT_TENSOR}:0", {contract.SIGNATURE_LABELS: f"{contract.LABELS_TENSOR}:0"}
    outputs = {key: signature.outputs[key].name for key in sorted(signature.outputs)}  # type: ignore[attr-defined]
    if contract.SIGNATURE_LABELS not in outputs:
        raise KeyError(f"signature {contract.SIGNATURE} has no {contract.SIGNATURE_LABELS!r} output")
    return signature.inputs[contract.SIGNATURE_INPUT].name, outputs  # type: ignore[attr-defined]


def _first_words(message: str) -> str:
    """TensorFlow's error without the graph-node lines it appends: ``[[{{node ...}}]]``."""
    text = " ".join(message.replace("Graph execution error:", "").split())
    return text.split(" [[", 1)[0][:300]


def _spec(name: str, tensor: tf.Tensor) -> TensorSpec:
    shape = tensor.shape.as_list() if tensor.shape.rank is not None else []
    return TensorSpec(name, tensor.dtype.name, tuple(ANY if size is None else size for size in shape), tensor.name)


def load_version(model_dir: str | Path, name: str, version: int, **threads: int) -> LoadedModel:
    model = LoadedModel(contract.version_dir(model_dir, version), name, version, **threads)
    log.info("loaded model %s version %d from %s: inputs %s, outputs %s", name, version, model.path,
             model.spec.inputs, model.spec.outputs)
    return model
