"""The soak script, short: sustained load, no errors, memory flat, queue bounded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import MNIST_DIR, REPO


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk; .ci/run installs it)")
def test_a_short_soak_passes(redis_url, trained_model_dir):
    env = dict(os.environ, REDIS_URL=redis_url, MODEL_DIR=str(trained_model_dir), MNIST_DATA_DIR=str(MNIST_DIR),
               TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-m", "bench.soak", "--seconds", "24", "--rps", "80", "--warmup", "8"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    verdict = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0, run.stdout[-3000:]
    assert verdict["passed"] and verdict["errors"] == 0
    assert verdict["wrong_labels"] <= 0.05 * verdict["requests"]  # the model's own errors on these digits
    assert verdict["requests"] >= 80 * 24 * 0.5
    assert verdict["api_rss_growth"] <= 0.10 and verdict["worker_rss_growth"] <= 0.10
