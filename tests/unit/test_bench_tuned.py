"""``bench.tuned``'s verdicts and its model directory of the run's own, without a benchmark."""

from __future__ import annotations

import json

from bench.client import ClientResult
from bench.load import SyncPoint
from bench.tuned import DEFAULT, TUNED, SystemRun, TunedComparison, table, tuned_copy


def run(rps_1: float, p99_1: float, rps_64: float, p99_64: float, client_rate: float) -> SystemRun:
    return SystemRun([SyncPoint(1, 100, rps_1, p99_1 / 2, p99_1, 0, 0), SyncPoint(64, 100, rps_64, 5, p99_64, 0, 0)],
                     ClientResult(10_000, 1.0, client_rate, 0, 0))


def comparison(default: SystemRun, tuned: SystemRun) -> TunedComparison:
    return TunedComparison("mnist", "HTTP-bound", {"max_batch_size": 64, "max_batch_wait_ms": 0.2},
                           {"WORKERS": "1", "TF_INTRA_OP_THREADS": "1", "TF_INTER_OP_THREADS": "1"}, [],
                           100_000.0, 0.64, {DEFAULT: default, TUNED: tuned}, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])


def test_a_tuned_run_better_at_light_load_and_level_under_load_meets_both_goals():
    compared = comparison(run(100, 10, 1000, 50, 10_000), run(200, 4, 1010, 49, 10_200))
    assert compared.ratios() == {"rps_c1": 2.0, "p99_c1": 0.4, "rps_c64": 1.01, "p99_c64": 0.98, "client": 1.02}
    assert compared.not_worse() and compared.better()
    shown = table(compared)
    assert "10.2% of the limit" in shown
    assert "1 worker(s) x 64 / 0.640 ms = 100,000 images/s" in shown


def test_a_tuned_run_worse_anywhere_fails_the_first_goal_and_level_fails_the_second():
    worse_tail = comparison(run(100, 10, 1000, 50, 10_000), run(200, 4, 1000, 60, 10_000))
    assert not worse_tail.not_worse() and worse_tail.better()
    level = comparison(run(100, 10, 1000, 50, 10_000), run(110, 9, 1000, 50, 10_000))
    assert level.not_worse() and not level.better()
    assert "better by 20% or more somewhere: no" in table(level)


def test_the_tuned_copy_links_the_versions_and_keeps_the_models_own_config(tmp_path):
    model = tmp_path / "model"
    for version in ("1", "3"):
        (model / version).mkdir(parents=True)
        (model / version / "saved_model.pb").write_bytes(b"")
    (model / "4").mkdir()  # incomplete: not served, not linked
    (model / "config.json").write_text(json.dumps({"signature": "serving_default", "max_batch_size": 4}))
    copy = tuned_copy(model, {"max_batch_size": 32, "max_batch_wait_ms": 0.5}, tmp_path / "tuned")
    assert sorted(path.name for path in copy.iterdir()) == ["1", "3", "config.json"]
    assert (copy / "3").resolve() == (model / "3").resolve()
    assert json.loads((copy / "config.json").read_text()) == {"signature": "serving_default", "max_batch_size": 32,
                                                              "max_batch_wait_ms": 0.5}
    assert json.loads((model / "config.json").read_text())["max_batch_size"] == 4  # the model is left alone
