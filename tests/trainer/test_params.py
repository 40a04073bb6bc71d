"""Training parameters: the shipped config, defaults, environment overrides, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer.helpers import REPO
from trainer.errors import TrainerError
from trainer.params import KEYS, TrainParams, load_params

SEED_KEYS = {
    "learning_rate", "batch_size", "n_hidden_1", "n_hidden_2", "n_classes", "n_input", "save_path", "data_path",
}


def write_params(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(values))
    return path


def load_error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(TrainerError) as caught:
        load_params(path, environ or {})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_shipped_config_holds_the_seeds_keys_and_the_trainers_own() -> None:
    path = REPO / "config" / "model.json"
    raw = json.loads(path.read_text())
    assert set(raw) == set(KEYS)
    assert set(raw) >= SEED_KEYS
    params = load_params(path, {})
    assert params.arch == "mlp"
    assert (params.save_path, params.data_path) == ("models/mnist", "data/mnist")
    assert (params.n_input, params.n_classes, params.n_hidden_1, params.n_hidden_2) == (784, 10, 256, 256)
    assert params.max_train_images is None


def test_shipped_cnn_config_saves_under_the_name_it_is_served_as() -> None:
    path = REPO / "config" / "model_cnn.json"
    raw = json.loads(path.read_text())
    assert set(raw) <= set(KEYS)
    assert not {"n_hidden_1", "n_hidden_2"} & set(raw)  # the MLP's; the CNN does not use them
    params = load_params(path, {})
    assert params.arch == "cnn"
    assert (params.save_path, params.data_path) == ("models/mnist_cnn", "data/mnist")
    assert params.max_train_images is None


def test_arch_defaults_to_the_seeds_mlp(tmp_path: Path) -> None:
    assert load_params(write_params(tmp_path, epochs=1), {}).arch == "mlp"


@pytest.mark.parametrize("value", ["resnet", "CNN", ""])
def test_an_unknown_arch_is_named_with_the_choices(tmp_path: Path, value: str) -> None:
    path = write_params(tmp_path, arch=value)
    assert load_error(path) == f"{path}: arch must be one of 'mlp', 'cnn', got {value!r}"


def test_missing_keys_take_defaults_with_three_epochs_as_the_seed(tmp_path: Path) -> None:
    params = load_params(write_params(tmp_path, batch_size=50), {})
    assert params == TrainParams(batch_size=50)
    assert params.epochs == 3


def test_an_integer_learning_rate_is_a_float(tmp_path: Path) -> None:
    params = load_params(write_params(tmp_path, learning_rate=1), {})
    assert isinstance(params.learning_rate, float)


def test_model_dir_and_mnist_data_dir_override_the_paths_when_set(tmp_path: Path) -> None:
    path = write_params(tmp_path, save_path="a", data_path="b")
    assert load_params(path, {}).save_path == "a"
    overridden = load_params(path, {"MODEL_DIR": "/models", "MNIST_DATA_DIR": "/mnist", "PORT": "not a port"})
    assert (overridden.save_path, overridden.data_path) == ("/models", "/mnist")
    empty = load_params(path, {"MODEL_DIR": "", "MNIST_DATA_DIR": ""})
    assert (empty.save_path, empty.data_path) == ("a", "b")


def test_model_repository_puts_the_model_in_it_under_its_name_and_model_dir_wins(tmp_path: Path) -> None:
    path = write_params(tmp_path, save_path="models/mnist_cnn")
    assert load_params(path, {"MODEL_REPOSITORY": "/repo"}).save_path == "/repo/mnist_cnn"
    both = load_params(path, {"MODEL_REPOSITORY": "/repo", "MODEL_DIR": "/one-model"})
    assert both.save_path == "/one-model"


def test_unknown_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path = write_params(tmp_path, batch_sise=100)
    message = load_error(path)
    assert str(path) in message
    assert "'batch_sise'" in message
    assert "did you mean 'batch_size'" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("batch_size", "100"),
        ("batch_size", 100.0),
        ("batch_size", True),
        ("learning_rate", "0.01"),
        ("learning_rate", False),
        ("save_path", 5),
        ("max_train_images", "all"),
        ("download", "yes"),
        ("epochs", None),
        ("arch", 1),
        ("arch", None),
    ],
)
def test_wrong_type_names_the_key(tmp_path: Path, key: str, value: object) -> None:
    path = write_params(tmp_path, **{key: value})
    message = load_error(path)
    assert message.startswith(f"{path}: {key} must be")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("batch_size", 0),
        ("n_hidden_1", -5),
        ("n_hidden_2", 0),
        ("n_classes", 0),
        ("n_input", -784),
        ("epochs", 0),
        ("learning_rate", 0),
        ("learning_rate", -0.1),
        ("max_train_images", 0),
    ],
)
def test_non_positive_size_names_the_key(tmp_path: Path, key: str, value: object) -> None:
    message = load_error(write_params(tmp_path, **{key: value}))
    assert f"{key} must be positive" in message or f"{key} must be a positive" in message


def test_not_a_number_learning_rate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text('{"learning_rate": NaN}')
    assert "learning_rate must be a positive number" in load_error(path)


@pytest.mark.parametrize(("key", "value", "wanted"), [("n_input", 100, "784"), ("n_classes", 9, "10")])
def test_shapes_other_than_mnists_are_refused(tmp_path: Path, key: str, value: int, wanted: str) -> None:
    assert f"{key} must be {wanted}" in load_error(write_params(tmp_path, **{key: value}))


def test_empty_path_is_refused(tmp_path: Path) -> None:
    assert "save_path must not be empty" in load_error(write_params(tmp_path, save_path=" "))


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    assert load_error(path) == f"parameters file not found: {path}"


def test_invalid_json_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text('{\n  "epochs": 3,\n}')
    message = load_error(path)
    assert message.startswith(f"{path}: not valid JSON")
    assert "line 3" in message


def test_a_json_list_is_not_parameters(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text("[1, 2]")
    assert "must hold a JSON object" in load_error(path)


def test_constructing_params_directly_validates_too() -> None:
    with pytest.raises(TrainerError, match="batch_size must be positive"):
        TrainParams(batch_size=0)
