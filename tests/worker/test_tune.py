"""``inferq tune`` on a real trained model: it measures, proposes, and writes config.json keeping its
other keys; and the pieces it is made of (the queue's line, the config's write)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inferq import model_config
from worker.queue_costs import fit_line
from worker.tune import write_config

REPO = Path(__file__).resolve().parents[2]
#: --quick's bound: it measures three batch sizes, one thread setting, a few queue rounds.
QUICK_BOUND_S = 120


def test_the_queues_line_is_fitted_through_its_points():
    assert fit_line([(1, 1.5), (4, 3.0), (16, 9.0)]) == (pytest.approx(1.0), pytest.approx(0.5))
    # Noise that makes a slope negative: a cost a batch, none an item.
    assert fit_line([(1, 2.0), (16, 1.9)]) == (pytest.approx(1.95), 0.0)
    # A negative intercept: through the origin.
    intercept, slope = fit_line([(1, 0.1), (16, 3.0)])
    assert intercept == 0.0 and slope > 0


def test_writing_the_config_keeps_the_other_keys_and_twice_is_once(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"signature": "serving_default", "max_batch_size": 8,
                                "version_policy": {"latest": 2}}))
    write_config(tmp_path, {"max_batch_size": 32, "max_batch_wait_ms": 1.5})
    first = path.read_text()
    assert json.loads(first) == {"signature": "serving_default", "max_batch_size": 32,
                                 "version_policy": {"latest": 2}, "max_batch_wait_ms": 1.5}
    write_config(tmp_path, {"max_batch_size": 32, "max_batch_wait_ms": 1.5})
    assert path.read_text() == first
    assert model_config.load(tmp_path).max_batch_size == 32
    assert sorted(os.listdir(tmp_path)) == ["config.json"]  # no staging file left


def test_writing_a_value_the_worker_would_refuse_leaves_the_file_alone(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"max_batch_size": 8}')
    with pytest.raises(model_config.ConfigError):
        write_config(tmp_path, {"max_batch_size": 0})
    assert path.read_text() == '{"max_batch_size": 8}'


def test_the_cli_measures_a_real_model_proposes_and_writes_in_bounded_time(trained_model_dir, tmp_path):
    model_dir = tmp_path / "mnist"
    shutil.copytree(trained_model_dir, model_dir)
    (model_dir / "config.json").write_text(json.dumps({"signature": "serving_default"}))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "inferq.client.cli", "tune", str(model_dir), "--quick", "--write",
                           "--cores", "2"], capture_output=True, text=True, timeout=QUICK_BOUND_S,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert elapsed < QUICK_BOUND_S
    written = json.loads((model_dir / "config.json").read_text())
    assert written["signature"] == "serving_default"
    assert written["max_batch_size"] in (1, 8, 64)  # one of the batches --quick measures
    assert written["max_batch_wait_ms"] > 0
    out = done.stdout
    for batch in (1, 8, 64):
        assert any(line.split()[:2] == ["1", str(batch)] for line in out.splitlines()), out
    assert "a batch +" in out and "an item in the worker" in out
    assert "TF_INTRA_OP_THREADS=" in out and "WORKERS=1" in out  # 2 cores, 1 left to the API
    assert "<- proposed" in out
    assert "measuring" in done.stderr  # the progress bar


def test_the_cli_refuses_a_directory_without_versions(tmp_path):
    done = subprocess.run([sys.executable, "-m", "inferq.client.cli", "tune", str(tmp_path), "--quick"],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert "no model version" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_p99_objective_needs_its_rate(tmp_path):
    done = subprocess.run([sys.executable, "-m", "inferq.client.cli", "tune", str(tmp_path), "--p99-ms", "10"],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and "--rate" in done.stderr
