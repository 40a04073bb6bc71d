"""The benchmark's system under test serves the model measured as the default model, from a
repository of its own, whatever the caller's environment names."""

from __future__ import annotations

from pathlib import Path

from bench import systems
from inferq.repository import Repository
from inferq.settings import Settings


def test_the_model_measured_is_the_one_model_of_a_repository_as_the_default_model(tmp_path: Path) -> None:
    model_dir = tmp_path / "mine"
    (model_dir / "3").mkdir(parents=True)
    (model_dir / "3" / "saved_model.pb").write_bytes(b"")
    with systems.serving_repository(model_dir) as root:
        assert systems.SERVED_MODEL == Settings().default_model == "mnist"
        assert Repository(root).models() == {"mnist": root / "mnist"}
        assert (root / "mnist").resolve() == model_dir.resolve()
    assert not root.exists() and (model_dir / "3" / "saved_model.pb").is_file()


def test_the_served_repository_wins_over_the_callers_model_settings(tmp_path: Path, monkeypatch) -> None:
    for name, value in {"MODEL_DIR": "/elsewhere", "MODEL_REPOSITORY": "/other", "WORKER_MODELS": "cnn",
                        "DEFAULT_MODEL": "cnn"}.items():
        monkeypatch.setenv(name, value)
    env = systems._serving_env(tmp_path, PORT=1234)
    settings = Settings.from_env(env)
    assert settings.repository_root == str(tmp_path)
    assert (settings.model_dir, settings.served_models, settings.default_model) == (None, None, "mnist")
    assert (settings.port, settings.heartbeat_interval_s) == (1234, 0.5)
