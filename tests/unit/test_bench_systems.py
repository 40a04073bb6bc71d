"""The benchmark's system under test serves the model measured as the default model, from a
repository of its own, whatever the caller's environment names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench import systems
from inferq.repository import Repository
from inferq.settings import Settings
from launcher.processes import Child


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


# Says it is up, then on SIGTERM takes its time (argv[2] seconds) and writes its name (argv[1]).
STOPPING = ("import signal, sys, time\n"
            "def stop(*_):\n"
            "    time.sleep(float(sys.argv[2]))\n"
            "    open(sys.argv[3], 'a').write(sys.argv[1])\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "print('up', flush=True)\n"
            "time.sleep(60)\n")


def test_the_last_started_stops_first_and_is_gone_before_the_next_is_told(tmp_path: Path) -> None:
    order = tmp_path / "order"
    # The API is started last and takes a while to stop (it answers the requests it holds): the
    # workers started before it must still run meanwhile.
    children = [Child(name, [sys.executable, "-c", STOPPING, name, delay, str(order)], dict(os.environ))
                for name, delay in (("w", "0"), ("a", "0.5"))]
    for child in children:
        child.process = subprocess.Popen(child.command, stdout=subprocess.PIPE, env=child.env)
        assert child.process.stdout.readline() == b"up\n"
    systems._stop(children)
    assert order.read_text() == "aw"
    assert not any(child.alive() for child in children)
