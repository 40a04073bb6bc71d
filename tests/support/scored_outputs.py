"""Comparing big outputs (scored files, long lists) so that a difference fails at once, in one line.

Never ``assert big == other_big``: on failure pytest diffs the two values, which for two
10,000-line strings ran for over 15 minutes. These helpers compare lengths, then stop at the first
differing item and name it.

What a user may rely on (docs/client.md, "What two runs may differ in"): an image's name, its
labels, its error and the model version are exact; its probabilities may differ between two runs
by the float32 rounding of another batch's summation order, never by more than
:data:`PROBABILITY_TOLERANCE` each, whatever the batch it ran in. An image whose two top
probabilities are within twice that is a tie at that precision: its label may be either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: The most an image's probability may differ between two batches it ran in (absolute).
PROBABILITY_TOLERANCE = 1e-5
#: The fields of a ``.jsonl`` row that are exact whatever the batch.
EXACT_FIELDS = ("name", "model_version", "error")


def assert_same_items(actual: Sequence, expected: Sequence, what: str = "items") -> None:
    """``actual == expected``, failing with the counts or the first differing item, never a diff."""
    if len(actual) != len(expected):
        raise AssertionError(f"{len(actual)} {what}, expected {len(expected)}")
    for index, (got, wanted) in enumerate(zip(actual, expected, strict=True)):
        if got != wanted:
            raise AssertionError(f"{what} differ first at {index}: {_short(got)} != {_short(wanted)}")


def assert_same_bytes(actual: Path, expected: Path) -> None:
    """Two files byte for byte, failing with the first differing line."""
    got, wanted = actual.read_bytes(), expected.read_bytes()
    if got != wanted:
        assert_same_items(got.splitlines(), wanted.splitlines(), f"lines of {actual.name}")
        raise AssertionError(f"{actual.name} and {expected.name} differ in their line endings")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_answers(actual: Path, expected: Path, tolerance: float = PROBABILITY_TOLERANCE) -> None:
    """Two ``.jsonl`` outputs give each image the same answer as users may rely on it: names,
    model versions and errors exact, probabilities within ``tolerance``, labels exact but for ties
    at that precision."""
    got, wanted = read_jsonl(actual), read_jsonl(expected)
    if len(got) != len(wanted):
        raise AssertionError(f"{actual.name} has {len(got)} rows, {expected.name} {len(wanted)}")
    for index, (row, reference) in enumerate(zip(got, wanted, strict=True)):
        problem = answer_difference(row, reference, tolerance)
        if problem:
            raise AssertionError(f"row {index} ({reference.get('name')}): {problem}")


def answer_difference(row: dict, reference: dict, tolerance: float = PROBABILITY_TOLERANCE) -> str | None:
    """What makes ``row`` another answer than ``reference`` for its image, or None."""
    for field in EXACT_FIELDS:
        if row.get(field) != reference.get(field):
            return f"{field} {_short(row.get(field))} != {_short(reference.get(field))}"
    if ("probabilities" in row) != ("probabilities" in reference):
        return "one has probabilities, the other not"
    if "probabilities" not in reference:
        return None if row.get("labels") == reference.get("labels") else \
            f"labels {row.get('labels')} != {reference.get('labels')}"
    probabilities = np.asarray(row["probabilities"], np.float64)
    wanted = np.asarray(reference["probabilities"], np.float64)
    if probabilities.shape != wanted.shape:
        return f"probabilities of shape {probabilities.shape} != {wanted.shape}"
    off = float(np.max(np.abs(probabilities - wanted), initial=0.0))
    if off > tolerance:
        return f"a probability differs by {off:.3g}, more than {tolerance:g}"
    if row.get("labels") != reference.get("labels") and not _tie(wanted, tolerance):
        return (f"labels {row.get('labels')} != {reference.get('labels')} "
                f"(no tie: top two apart by more than {2 * tolerance:g})")
    return None


def _tie(probabilities: np.ndarray, tolerance: float) -> bool:
    top = np.sort(probabilities.ravel())[-2:]
    return top.size == 2 and float(top[1] - top[0]) <= 2 * tolerance


def _short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
