"""The image routes' answer per item: the shape the first releases gave, whatever the model outputs."""

from __future__ import annotations

from inferq.answers import item_answers
from inferq.jobs import Outcome
from tests.support.specs import go_server_spec, mnist_spec


def test_a_model_of_labels_only_answers_null_probabilities():
    """The original Go server's graph has no probabilities: the key is there, as clients read it."""
    outcome = Outcome.done({"model_version": 1, "outputs": {"labels": [7, 2]}})
    assert item_answers(["a.png", "b.png"], outcome, go_server_spec(1)) == [
        {"filename": "a.png", "labels": [7], "probabilities": None, "model_version": 1},
        {"filename": "b.png", "labels": [2], "probabilities": None, "model_version": 1}]


def test_a_model_with_probabilities_answers_them():
    row = [0.0] * 9 + [1.0]
    outcome = Outcome.done({"model_version": 2, "outputs": {"labels": [9], "probabilities": [row]}})
    assert item_answers(["104.png"], outcome, mnist_spec(2)) == [
        {"filename": "104.png", "labels": [9], "probabilities": row, "model_version": 2}]
