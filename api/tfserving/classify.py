"""TensorFlow Serving's ``:classify`` for a model with class scores: which output holds them, and the
answer, ``{"results": [[[label, score], ...], ...]}`` (``results``, as TF Serving's server writes it in
``json_tensor.cc``, though its REST page shows ``result``).

TF Serving classifies only with a signature of method ``tensorflow/serving/classify`` and answers any
other with INVALID_ARGUMENT, a 400. inferq classifies with any model that has one output of class
scores (:meth:`inferq.model_spec.ModelSpec.class_output`), and answers a 400 the same way where it has none
(:func:`not_a_classifier`).
Each item's classes come best first (TF Serving keeps the model's order); a class's label is its name
where the model's config has ``labels``, else its index ("3"), where TF Serving would send "".
"""

from __future__ import annotations

import numpy as np

from api.errors import ApiError
from api.tensor_values import described, shape_text
from inferq.model_spec import ModelSpec


def not_a_classifier(spec: ModelSpec) -> ApiError:
    """The 400 for ``:classify`` with a model that has no one output of class scores."""
    labels = spec.config.labels
    wanted = f"[-1, {len(labels)}] (its {len(labels)} labels)" if labels is not None else "[-1, C]"
    return ApiError(400, f"model {spec.name!r} version {spec.version} has no one output of class scores for "
                         f"':classify' (float16, float32 or float64 {wanted}); its outputs are "
                         + ", ".join(described(tensor, tensor.dtype) for tensor in spec.outputs)
                         + "; ask ':predict' instead")


def classifications(scores: object, labels: tuple[str, ...] | None) -> dict:
    """``:classify``'s answer for scores [N, C]: each item's classes, best first, as [label, score]."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or (labels is not None and len(labels) != scores.shape[1]):
        raise ValueError(f"scores of shape {shape_text(scores.shape)} are not one score per class of "
                         f"{len(labels) if labels is not None else 'C'} for each item")
    names = list(labels) if labels is not None else [str(index) for index in range(scores.shape[1])]
    order = np.argsort(-scores, axis=1, kind="stable")  # ties keep the model's order; NaN last
    ranked = np.take_along_axis(scores, order, axis=1)
    return {"results": [[[names[index], score] for index, score in zip(row, row_scores, strict=True)]
                        for row, row_scores in zip(order.tolist(), ranked.tolist(), strict=True)]}
