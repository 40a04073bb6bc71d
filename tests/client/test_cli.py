"""The ``inferq`` command: what a person sees, and the exit status a script checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from inferq.client.cli import main
from launcher.processes import free_port
from tests.client.fake_service import numbered_images
from tests.conftest import REPO, png_bytes


def test_recognize_prints_one_answer_a_file_as_the_seeds_curl_did(service, tmp_path, capsys):
    for i in (3, 4):
        (tmp_path / f"{i}.png").write_bytes(png_bytes(numbered_images(5)[i]))
    status = main(["recognize", str(tmp_path / "3.png"), str(tmp_path / "4.png"), "--url", service.url])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0].startswith('{"filename":"3.png","labels":[3],')
    assert [json.loads(line)["labels"] for line in lines] == [[3], [4]]


def test_score_shows_progress_and_a_summary_and_exits_0(service, tmp_path, capsys):
    np.save(tmp_path / "in.npy", numbered_images(3000))
    status = main(["score", str(tmp_path / "in.npy"), "--out", str(tmp_path / "out.npy"), "--url", service.url])
    err = capsys.readouterr().err
    assert status == 0
    assert "3000/3000" in err and "img/s" in err  # tqdm's bar: images done, rate
    assert "scored 3000 images in " in err and "; 0 failed" in err
    assert np.array_equal(np.load(tmp_path / "out.npy"), np.arange(3000) % 10)


def test_score_asks_a_callback_for_every_chunk_when_told(service, tmp_path):
    np.save(tmp_path / "in.npy", numbered_images(1500))
    hook = "https://hooks.example.com/inferq/done?run=7"
    status = main(["score", str(tmp_path / "in.npy"), "--out", str(tmp_path / "out.npy"), "--url", service.url,
                   "--quiet", "--callback", hook])
    assert status == 0
    assert service.post_queries == [{"callback": [hook]}] * 2  # two chunks of at most 1,024


def test_score_exits_1_and_names_the_images_that_failed(service, tmp_path, capsys):
    service.failure = lambda ids: "the model failed" if 0 in ids else None
    np.save(tmp_path / "in.npy", numbered_images(1500))
    status = main(["score", str(tmp_path / "in.npy"), "--out", str(tmp_path / "out.csv"), "--url", service.url,
                   "--quiet"])
    err = capsys.readouterr().err
    assert status == 1
    assert "FAILED images 0..1023 (in.npy#0 .. in.npy#1023): the model failed" in err
    assert "1024 of 1500 images have no answer" in err


def test_a_service_that_cannot_be_reached_is_exit_2_with_a_reason_and_the_way_on(tmp_path, capsys):
    np.save(tmp_path / "in.npy", numbered_images(10))
    url = f"http://127.0.0.1:{free_port()}"
    status = main(["score", str(tmp_path / "in.npy"), "--out", str(tmp_path / "out.jsonl"), "--quiet",
                   "--url", url, "--chunk", "5", "--patience", "0.3"])
    err = capsys.readouterr().err
    assert status == 2
    assert f"inferq: POST {url}/jobs: ConnectionRefusedError" in err
    assert "run the same command with --resume to go on" in err


def test_an_output_of_no_known_format_is_refused_before_anything_is_sent(service, tmp_path, capsys):
    np.save(tmp_path / "in.npy", numbered_images(10))
    assert main(["score", str(tmp_path / "in.npy"), "--out", str(tmp_path / "out.txt"), "--url", service.url]) == 2
    assert "one of .jsonl, .csv, .npy" in capsys.readouterr().err
    assert service.requests == 0


def test_the_client_and_its_command_import_no_tensorflow_nor_the_services_packages():
    code = ("import sys, inferq.client, inferq.client.cli, inferq.client.run; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'api', 'worker', 'trainer'}))")
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_the_command_is_installed_with_the_package():
    command = Path(sys.executable).parent / "inferq"
    shown = subprocess.run([str(command), "score", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--resume" in shown and "--concurrency N" in shown


def test_tune_where_the_workers_side_is_not_installed_says_so(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "tensorflow" else real(name))
    assert main(["tune", "models/mnist"]) == 2
    err = capsys.readouterr().err
    assert "inferq tune: runs where the workers run" in err and "tensorflow not installed" in err
