"""``make up`` as a user runs it: one foreground process that starts, supervises and stops everything."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from launcher.processes import descendants, free_port
from tests.conftest import MNIST_DIR, REPO
from tests.support import saved_models
from tests.support.models import build_model
from tests.support.sentinel import sentinel_group
from tests.support.waiting import wait_for


class Launcher:
    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.log = tmp_path / "make-up.log"
        env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
        env.update(RUN_DIR=str(tmp_path / "run"), MNIST_DATA_DIR=str(MNIST_DIR), HEARTBEAT_INTERVAL_S="0.5",
                   API_PROCESSES="1", API_THREADS="4", PYTHONUNBUFFERED="1", GRPC_PORT=str(free_port()),
                   GRPC_METRICS_PORT=str(free_port()))
        env.update({name.upper(): str(value) for name, value in settings.items()})
        self.port = int(env.get("PORT", 8080))
        self.grpc_port = int(env["GRPC_PORT"])
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "launcher"], cwd=REPO, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_exit(self, timeout_s: float = 60) -> int:
        return self.process.wait(timeout_s)


def grpc_labels(port: int, png: bytes) -> list[int]:
    """The default model's labels for ``png`` over gRPC (tritonclient.grpc): its pixels as the image
    routes decode them (``api.images.decoding``), as a tensor."""
    import tritonclient.grpc as triton_grpc

    from api.images.decoding import decode

    pixels = decode(png, max_pixels=10**6).astype(np.float32).reshape(1, 784)
    tensor = triton_grpc.InferInput("inputdata", [1, 784], "FP32")
    tensor.set_data_from_numpy(pixels)
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        return client.infer("mnist", [tensor]).as_numpy("labels").tolist()
    finally:
        client.close()


def recognize(port: int, png: bytes) -> dict:
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="104.png"\r\n\r\n'.encode()
            + png + f"\r\n--{boundary}--\r\n".encode())
    request = urllib.request.Request(f"http://127.0.0.1:{port}/recognize", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_make_up_serves_restarts_a_dead_worker_and_stops_everything_on_sigterm(tmp_path, trained_model_dir,
                                                                                digit_104):
    up = Launcher(tmp_path, port=free_port(), model_dir=trained_model_dir)
    try:
        wait_for(lambda: "inferq is up on" in up.output(), 120, f"the ready line:\n{up.output()}")
        assert "embedded Redis" in up.output()
        answer = recognize(up.port, digit_104)
        assert (answer["filename"], answer["labels"]) == ("104.png", [9])
        assert f"and gRPC localhost:{up.grpc_port}" in up.output()
        assert grpc_labels(up.grpc_port, digit_104) == [9]  # the gRPC front end, on the same queue

        children = descendants(up.process.pid)
        worker = next(pid for pid in children if b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: "worker 0 exited (status -9); starting it again" in up.output(), 30, "the restart")
        wait_for(lambda: recognize(up.port, digit_104)["labels"] == [9], 120, "the new worker to answer")

        children = descendants(up.process.pid)
        up.process.send_signal(signal.SIGTERM)
        assert up.wait_exit() == 0
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "a child outlived make up"
    finally:
        if up.process.poll() is None:
            up.process.kill()


def get_json(port: int, path: str, body: object = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_make_up_serves_every_model_of_its_repository(tmp_path, digit_104):
    """MODEL_REPOSITORY with two models, one of images and one of numbers: the workers ``make up``
    starts serve both, through the image routes and TF Serving's."""
    repo = tmp_path / "repo"
    build_model(repo / "mnist", 1, label=6)
    saved_models.build_tabular(repo)
    features = saved_models.sample_inputs("tabular", 3, random_seed=2)["features"]
    expected = saved_models.offline_outputs(repo / "tabular" / "1", {"features": features})
    up = Launcher(tmp_path, port=free_port(), model_repository=repo)
    try:
        wait_for(lambda: "inferq is up on" in up.output(), 120, f"the ready line:\n{up.output()}")
        assert "training the MNIST one" not in up.output()
        listed = get_json(up.port, "/models")["models"]
        assert [(model["name"], model["versions"], model["ready_versions"]) for model in listed] == [
            ("mnist", [1], [1]), ("tabular", [1], [1])]
        answer = recognize(up.port, digit_104)
        assert (answer["filename"], answer["labels"], answer["model_version"]) == ("104.png", [6], 1)
        predictions = get_json(up.port, "/v1/models/tabular:predict", {"instances": features.tolist()})["predictions"]
        assert [sorted(row) for row in predictions] == [["class_probabilities", "value"]] * 3
        for name, values in expected.items():
            np.testing.assert_allclose([row[name] for row in predictions], values, rtol=1e-5, atol=1e-6, err_msg=name)
        up.process.send_signal(signal.SIGTERM)
        assert up.wait_exit() == 0
    finally:
        if up.process.poll() is None:
            up.process.kill()


def test_make_up_serves_from_the_master_that_sentinels_name(tmp_path, digit_104):
    build_model(tmp_path / "models", 1, label=3)
    with sentinel_group(tmp_path) as group:
        up = Launcher(tmp_path, port=free_port(), model_dir=tmp_path / "models", redis_url=group.url)
        try:
            wait_for(lambda: "inferq is up on" in up.output(), 120, f"the ready line:\n{up.output()}")
            assert recognize(up.port, digit_104)["labels"] == [3]
            assert "embedded Redis" not in up.output()
            assert group.client(group.primary_port).dbsize() > 0, "the primary holds the job store"
            up.process.send_signal(signal.SIGTERM)
            assert up.wait_exit() == 0
        finally:
            if up.process.poll() is None:
                up.process.kill()


def test_make_up_fails_fast_when_the_port_is_taken(tmp_path, trained_model_dir):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        up = Launcher(tmp_path, port=taken.getsockname()[1], model_dir=trained_model_dir)
        assert up.wait_exit(30) == 1
    assert f"make up: port {up.port} is taken" in up.output()


def test_a_port_whose_last_connections_are_closing_is_free_for_the_next_make_up():
    """Connections of an earlier run in TIME_WAIT (the server closed them first, as it does on
    shutdown) do not hold the port: a restart right after a stop is not refused."""
    from launcher import LaunchError, _check_port_free

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn and granian listen
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server's side closes first: its end waits in TIME_WAIT
            client.recv(1)
        with pytest.raises(LaunchError):
            _check_port_free(port)  # still listening: taken
    _check_port_free(port)


def test_make_up_fails_fast_when_redis_url_is_unreachable(tmp_path, trained_model_dir):
    url = f"redis://127.0.0.1:{free_port()}/0"
    up = Launcher(tmp_path, port=free_port(), model_dir=trained_model_dir, redis_url=url)
    assert up.wait_exit(30) == 1
    assert f"Redis at REDIS_URL={url} is unreachable" in up.output()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_make_up_stopped_while_starting_leaves_nothing_behind(tmp_path, trained_model_dir, stop):
    up = Launcher(tmp_path, port=free_port(), model_dir=trained_model_dir)
    wait_for(lambda: len(descendants(up.process.pid)) >= 3, 60, "redis, worker and api to start")
    children = descendants(up.process.pid)
    up.process.send_signal(stop)
    assert up.wait_exit() == 0
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
