"""A job's answer, item by item, as the image routes (and the job's callback) give it.

Each item (an uploaded image) is answered ``{"filename", "labels", "probabilities",
"model_version"}`` as the original Go server answered (``labels`` holding the predicted class),
with what the model has of these:

- ``labels``: the model's own integer ``labels`` output; else, for a model with class names
  (``labels`` in its config) and one float output of as many classes, the top class's name, with
  ``top``: the five most likely classes and their scores (a score that is not a number: null, last);
- ``probabilities``: the model's ``probabilities`` output (``null`` beside a ``labels`` output
  without one);
- ``outputs``: every other output, by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inferq.jobs import Outcome
from inferq.model_spec import ModelSpec

LABELS = "labels"
PROBABILITIES = "probabilities"
#: Classes listed in ``top``.
TOP = 5


def item_answers(filenames: Sequence[str], outcome: Outcome, spec: ModelSpec | None) -> list[dict[str, object]]:
    answer = outcome.answer or {}
    outputs: dict[str, list] = answer.get("outputs", {})
    count = len(next(iter(outputs.values()), []))
    names = list(filenames) if len(filenames) == count else [""] * count
    # Top classes by name: only for a model whose config names them.
    scores = spec.class_output() if spec is not None and spec.config.labels else None
    rest = [name for name in outputs if name not in (LABELS, PROBABILITIES)]
    items = []
    for index, filename in enumerate(names):
        item: dict[str, object] = {"filename": filename}
        if LABELS in outputs:
            item[LABELS] = [outputs[LABELS][index]]
        elif scores is not None and scores.name in outputs:
            assert spec is not None and spec.config.labels is not None
            row = outputs[scores.name][index]
            # A score that is not a number (NaN, kept as null: JSON has no NaN) ranks last.
            ranked = np.argsort(-np.asarray(row, dtype=np.float64), kind="stable")[:TOP]
            item[LABELS] = [spec.config.labels[ranked[0]]]
            item["top"] = [{"label": spec.config.labels[k], "score": row[k]} for k in ranked.tolist()]
        if PROBABILITIES in outputs:
            item[PROBABILITIES] = outputs[PROBABILITIES][index]
        elif LABELS in outputs:
            # A model of labels only (the original Go server's graph) answers ``null``, as the first
            # releases did: the shape clients read (``inferq.client``) always has the key.
            item[PROBABILITIES] = None
        if rest:
            item["outputs"] = {name: outputs[name][index] for name in rest}
        item["model_version"] = answer.get("model_version")
        items.append(item)
    return items
