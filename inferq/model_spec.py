"""What a served model takes and gives: one description of its tensors, for every process.

The worker reads it from the SavedModel's signature when it loads a version and sends it in its
heartbeats; the API reads it from there for validation, ``/models``, and the TensorFlow Serving
and KServe metadata. No TensorFlow is imported here.
"""

from __future__ import annotations

import dataclasses

from inferq.dtypes import FLOATS, DType, dtype
from inferq.model_config import ModelConfig, config_from_json

#: Where a shape has a dimension of any size (the batch dimension, first).
ANY = -1
#: Names that settle which output holds the class scores where several could.
_SCORE_NAMES = ("scores", "probabilities", "probs")


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    #: The signature's name for the tensor (``inputdata``, ``probabilities``).
    name: str
    #: TensorFlow's element type name (``float32``).
    dtype: str
    #: Dimensions, :data:`ANY` where any size goes.
    shape: tuple[int, ...]
    #: The graph tensor behind the name (``inputdata:0``), as TensorFlow Serving's metadata shows it.
    tensor_name: str = ""

    @property
    def type(self) -> DType:
        return dtype(self.dtype)

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "tensor_name": self.tensor_name}

    @classmethod
    def from_json(cls, data: dict) -> TensorSpec:
        return cls(data["name"], data["dtype"], tuple(data["shape"]), data.get("tensor_name", ""))


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    version: int
    #: The signature served, or None for a graph without one (the original Go server's model).
    signature: str | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    #: How it is served: batching, versions, class names, image preprocessing (``config.json``).
    config: ModelConfig = ModelConfig()

    def input(self, name: str) -> TensorSpec | None:
        return next((tensor for tensor in self.inputs if tensor.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((tensor for tensor in self.outputs if tensor.name == name), None)

    def class_output(self) -> TensorSpec | None:
        """The model's output of class scores: a float output [-1, C], C the number of labels where the
        config has them; where several fit, the one named scores or probabilities. None: no one output fits."""
        fitting = [tensor for tensor in self.outputs if tensor.dtype in FLOATS and len(tensor.shape) == 2
                   and tensor.shape[0] == ANY and tensor.shape[1] > 0]
        labels = self.config.labels
        if labels is not None:
            fitting = [tensor for tensor in fitting if tensor.shape[1] == len(labels)]
        if len(fitting) > 1:
            fitting = [tensor for tensor in fitting if tensor.name in _SCORE_NAMES]
        return fitting[0] if len(fitting) == 1 else None

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "signature": self.signature,
            "inputs": [tensor.to_json() for tensor in self.inputs],
            "outputs": [tensor.to_json() for tensor in self.outputs],
            "config": self.config.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict) -> ModelSpec:
        return cls(
            name=data["name"],
            version=int(data["version"]),
            signature=data.get("signature"),
            inputs=tuple(TensorSpec.from_json(tensor) for tensor in data["inputs"]),
            outputs=tuple(TensorSpec.from_json(tensor) for tensor in data["outputs"]),
            config=config_from_json(data.get("config")),
        )
