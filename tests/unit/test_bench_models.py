"""The benchmark's models: what MODEL names, and the untrained models it builds under the serving contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import models
from inferq.settings import Settings


def fake_version(model_dir: Path, version: int, accuracy: float | None = None) -> Path:
    """A version directory as the contract lists it (a saved_model.pb file), with metrics when given."""
    path = model_dir / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    if accuracy is not None:
        (path / "metrics.json").write_text(json.dumps({"test_accuracy": accuracy}))
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(model_repository=str(tmp_path / "models"))


@pytest.fixture
def legacy(tmp_path: Path) -> Settings:
    """The first releases' setting: MODEL_DIR, one model's directory (and a repository of the test's
    own, so that models trained in the checkout are not found first)."""
    return Settings(model_dir=str(tmp_path / "legacy"), model_repository=str(tmp_path / "models"))


def repository(settings: Settings) -> Path:
    return Path(settings.model_repository)


def resolve(spec: str | None, settings: Settings, work: Path, quick: bool = False) -> list[models.BenchModel]:
    work.mkdir(exist_ok=True)
    return models.resolve(spec, quick=quick, settings=settings, data_dir=Path("unused"), work=work)


def test_a_directory_of_versions_is_served_as_it_is(tmp_path: Path, settings: Settings) -> None:
    fake_version(tmp_path / "mine", 3, accuracy=0.9812)
    [model] = resolve(str(tmp_path / "mine"), settings, tmp_path / "work")
    assert (model.name, model.regime, model.model_dir) == ("mine", "given", str(tmp_path / "mine"))
    assert model.origin == f"version 3 of {tmp_path / 'mine'}, test accuracy 0.9812"


def test_one_savedmodel_directory_becomes_version_1_of_a_model_of_its_own(tmp_path: Path, settings: Settings) -> None:
    saved = fake_version(tmp_path / "export", 7)
    [model] = resolve(str(saved), settings, tmp_path / "work")
    assert model.name == "export-7"
    assert (Path(model.model_dir) / "1").resolve() == saved.resolve()
    assert sorted(entry.name for entry in Path(model.model_dir).iterdir()) == ["1"]


def test_a_name_is_looked_up_in_the_repository(tmp_path: Path, settings: Settings, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # so that the name is no path of its own
    fake_version(repository(settings) / "digits", 1)
    [model] = resolve("digits", settings, tmp_path / "work")
    assert (model.name, model.model_dir) == ("digits", str(repository(settings) / "digits"))


def test_a_name_is_still_looked_up_under_a_model_dir_that_is_set(tmp_path: Path, legacy: Settings,
                                                                monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    fake_version(Path(legacy.model_dir) / "digits", 1)
    [model] = resolve("digits", legacy, tmp_path / "work")
    assert model.model_dir == str(Path(legacy.model_dir) / "digits")


def test_a_model_that_is_nothing_servable_is_named_with_the_choices(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(models.BenchModelError) as caught:
        resolve(str(tmp_path / "empty"), settings, tmp_path / "work")
    message = str(caught.value)
    assert message.startswith(f"MODEL={tmp_path / 'empty'}: not a SavedModel directory")
    assert f"a model of {repository(settings)}/" in message
    assert "mnist, mnist_cnn, wide_mlp" in message


def test_quick_runs_the_seeds_mlp_alone_from_the_repository(tmp_path: Path, settings: Settings) -> None:
    fake_version(repository(settings) / "mnist", 2, accuracy=0.98)
    fake_version(repository(settings) / "mnist_cnn", 1)
    [model] = resolve(None, settings, tmp_path / "work", quick=True)
    assert (model.name, model.regime, model.model_dir) == ("mnist", "HTTP-bound", str(repository(settings) / "mnist"))


def test_the_seeds_mlp_is_model_dirs_model_where_that_is_set(tmp_path: Path, legacy: Settings) -> None:
    fake_version(Path(legacy.model_dir), 2, accuracy=0.98)
    [model] = resolve(None, legacy, tmp_path / "work", quick=True)
    assert (model.name, model.regime, model.model_dir) == ("mnist", "HTTP-bound", legacy.model_dir)


def test_a_repository_laid_out_as_one_model_is_the_seeds_mlp(tmp_path: Path) -> None:
    settings = Settings(model_repository=str(tmp_path / "models"))
    fake_version(repository(settings), 3)
    assert models.mnist_dir(settings) == repository(settings)


def test_without_the_seeds_mlp_it_is_trained_into_the_repository(tmp_path: Path, settings: Settings,
                                                                  monkeypatch) -> None:
    trained = []

    def train(command: list[str], *, check: bool, env: dict[str, str]) -> None:
        assert command[1:] == ["-m", "trainer", "--params", "config/model.json"] and check
        trained.append(env["MODEL_DIR"])
        fake_version(Path(env["MODEL_DIR"]), 1, accuracy=0.97)

    monkeypatch.setattr(models.subprocess, "run", train)
    [model] = resolve("mnist", settings, tmp_path / "work")
    assert trained == [str(repository(settings) / "mnist")]
    assert model.model_dir == str(repository(settings) / "mnist")
    assert model.origin.endswith("test accuracy 0.9700")


def test_a_trained_cnn_is_used_when_there_is_one(tmp_path: Path, settings: Settings) -> None:
    fake_version(repository(settings) / "mnist_cnn", 4, accuracy=0.993)
    [model] = resolve("mnist_cnn", settings, tmp_path / "work")
    assert model.regime == "compute-bound"
    assert model.model_dir == str(repository(settings) / "mnist_cnn")
    assert model.origin.endswith("test accuracy 0.9930")


def test_a_cnn_under_a_model_dir_that_is_set_is_still_found(tmp_path: Path, legacy: Settings) -> None:
    fake_version(Path(legacy.model_dir) / "mnist_cnn", 4, accuracy=0.993)
    [model] = resolve("mnist_cnn", legacy, tmp_path / "work")
    assert model.model_dir == str(Path(legacy.model_dir) / "mnist_cnn")


def test_an_untrained_wide_mlp_serves_under_the_contract(tmp_path: Path) -> None:
    from inferq.model_spec import TensorSpec
    from worker.model import load_version

    model_dir = models.write_wide_mlp(tmp_path / "wide", width=64, depth=3)
    loaded = load_version(model_dir, "wide_mlp", 1)
    assert loaded.spec.inputs == (TensorSpec("inputdata", "float32", (-1, 784), "inputdata:0"),)
    pixels = np.random.default_rng(0).integers(0, 256, (8, 784), np.uint8)
    answers = loaded.predict({"inputdata": pixels})
    labels, probabilities = answers["labels"], answers["probabilities"]
    assert labels.dtype == np.int64 and labels.shape == (8,)
    assert probabilities.shape == (8, 10)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), labels)


def test_without_a_trained_cnn_the_same_network_is_built_untrained(tmp_path: Path, settings: Settings) -> None:
    from worker.model import load_version

    [model] = resolve("mnist_cnn", settings, tmp_path / "work")
    assert model.model_dir == str(tmp_path / "work" / "models" / "mnist_cnn")
    assert model.origin == f"untrained (no model in {repository(settings) / 'mnist_cnn'}/: `make train ARCH=cnn`)"
    answers = load_version(model.model_dir, "mnist_cnn", 1).predict({"inputdata": np.zeros((3, 784), np.uint8)})
    assert answers["labels"].shape == (3,) and answers["probabilities"].shape == (3, 10)
