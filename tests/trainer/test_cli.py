"""``python -m trainer``: errors are one line and exit status 2 with nothing written; ``export-png``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.trainer.helpers import REPO
from trainer import cli, data


def run_trainer(tmp_path: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """The trainer in a fresh interpreter, in ``tmp_path``, with MODEL_DIR there too."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MODEL_DIR": str(tmp_path / "models")}
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "trainer", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_unknown_key_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    params = tmp_path / "model.json"
    params.write_text(json.dumps({"epochs": 1, "hidden": 3}))
    result = run_trainer(tmp_path, "--params", str(params))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {params}: unknown key 'hidden'")
    assert result.stderr.count("\n") == 1
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["model.json"]


def test_bad_parameters_fail_before_tensorflow_is_imported(tmp_path: Path) -> None:
    params = tmp_path / "model.json"
    params.write_text(json.dumps({"batch_size": 0}))
    code = (
        "import sys; from trainer.cli import main; status = main(sys.argv[1:]); "
        "print('tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow'); sys.exit(status)"
    )
    result = run_trainer(tmp_path, "--params", str(params), code=code)
    assert result.returncode == 2
    assert result.stderr == f"error: {params}: batch_size must be positive, got 0\n"
    assert result.stdout == "no tensorflow\n"


def test_missing_params_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    assert cli.main(["--params", str(missing)]) == 2
    assert capsys.readouterr().err == f"error: parameters file not found: {missing}\n"


def test_bad_epochs_option_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "model.json"
    params.write_text("{}")
    assert cli.main(["--params", str(params), "--epochs", "0"]) == 2
    assert capsys.readouterr().err == "error: --epochs: epochs must be positive, got 0\n"


def test_missing_data_is_named_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    params = tmp_path / "model.json"
    params.write_text(json.dumps({"download": False}))
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "mnist"))
    assert cli.main(["--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: MNIST file(s) train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz not found in ")
    assert str(tmp_path / "mnist") in err
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["model.json"]


def test_export_png_writes_the_mnist_png_layout(
    tmp_path: Path, mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mnist_png"
    args = ["export-png", "--split", "testing", "--out", str(out), "--data", str(mnist_dir), "--no-download"]
    assert cli.main(args) == 0
    assert f"Wrote 10000 PNG files under {out / 'testing'}" in capsys.readouterr().out
    idx = data.load_idx_split(mnist_dir, "testing")
    assert idx.labels[104] == 9
    with Image.open(out / "testing" / "9" / "104.png") as image:  # the seed's curl example
        assert (image.mode, image.size) == ("L", (28, 28))
        np.testing.assert_array_equal(np.asarray(image).reshape(784), idx.images[104])
    assert (out / "testing" / "7" / "0.png").is_file()
    assert not (out / "training").exists()
    counts = {label.name: len(list(label.iterdir())) for label in (out / "testing").iterdir()}
    assert counts == {str(digit): int(n) for digit, n in enumerate(np.bincount(idx.labels))}
    round_trip = data.load_png_split(out, "testing")
    np.testing.assert_array_equal(round_trip.images, idx.images)
    np.testing.assert_array_equal(round_trip.labels, idx.labels)
