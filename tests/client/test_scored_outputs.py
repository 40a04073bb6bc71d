"""The comparison of scored outputs the suite uses: what a user may rely on, and failing fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.scored_outputs import (
    PROBABILITY_TOLERANCE,
    assert_same_answers,
    assert_same_bytes,
    assert_same_items,
)


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def row(index: int, probabilities: list[float], label: int) -> dict:
    return {"name": f"t10k.npy#{index}", "labels": [label], "probabilities": probabilities, "model_version": 1}


def reference_rows(count: int) -> list[dict]:
    return [row(i, [0.1] * 9 + [0.1 + 1e-3 * (i % 7)], 9) for i in range(count)]


def test_answers_whose_probabilities_differ_in_their_last_digits_are_the_same(tmp_path):
    reference = reference_rows(10_000)
    redelivered = [dict(r, probabilities=[p + 3e-8 for p in r["probabilities"]]) if i % 125 == 0 else r
                   for i, r in enumerate(reference)]
    assert_same_answers(write_rows(tmp_path / "out.jsonl", redelivered), write_rows(tmp_path / "ref.jsonl", reference))


@pytest.mark.parametrize(("change", "message"), [
    ({"labels": [3]}, r"row 4321 \(t10k.npy#4321\): labels \[3\] != \[9\] \(no tie"),
    ({"probabilities": [0.1] * 9 + [0.2]}, r"row 4321 .*: a probability differs by 0.0\d+, more than 1e-05"),
    ({"model_version": 2}, r"row 4321 .*: model_version 2 != 1"),
    ({"error": "model failed"}, r"row 4321 .*: error 'model failed' != None"),
])
def test_another_answer_fails_at_once_naming_the_first_row_that_differs(tmp_path, change, message):
    reference = reference_rows(10_000)
    changed = [dict(r, **change) if i == 4321 else r for i, r in enumerate(reference)]
    with pytest.raises(AssertionError, match=message) as refused:
        assert_same_answers(write_rows(tmp_path / "out.jsonl", changed), write_rows(tmp_path / "ref.jsonl", reference))
    assert len(str(refused.value)) < 200, "the message must name one row, not the outputs"


def test_a_tie_at_the_tolerance_may_take_either_label(tmp_path):
    tied = [0.0] * 8 + [0.5, 0.5 + PROBABILITY_TOLERANCE]
    reference = write_rows(tmp_path / "ref.jsonl", [row(0, tied, 9)])
    assert_same_answers(write_rows(tmp_path / "out.jsonl", [row(0, tied, 8)]), reference)


def test_long_lists_and_files_fail_with_the_count_or_the_first_difference(tmp_path):
    with pytest.raises(AssertionError, match="^9999 labels, expected 10000$"):
        assert_same_items(list(range(9999)), list(range(10_000)), "labels")
    with pytest.raises(AssertionError, match="^labels differ first at 5000: -1 != 5000$"):
        assert_same_items([*range(5000), -1, *range(5001, 10_000)], list(range(10_000)), "labels")
    lines = [f"line {i}\n" for i in range(10_000)]
    (tmp_path / "a").write_text("".join(lines))
    (tmp_path / "b").write_text("".join(lines[:7000] + ["other\n"] + lines[7001:]))
    with pytest.raises(AssertionError, match=r"^lines of a differ first at 7000: b'line 7000' != b'other'$"):
        assert_same_bytes(tmp_path / "a", tmp_path / "b")
