"""The benchmark's peer, NVIDIA PyTriton in a venv of its own (bench.peers), starts with the trained
model and answers KServe v2 over HTTP and gRPC with the labels inferq gives, as the benchmark's
load sends it; skipped only where its venv cannot be built (no registry to build it from)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton_http

from bench import peers, systems, tensors


@pytest.fixture(scope="module")
def peer_python() -> object:
    try:
        return peers.ensure_venv()
    except peers.PeerUnavailable as exc:
        pytest.skip(str(exc))


def test_pytriton_answers_the_benchmarks_requests_over_both_carriers(peer_python, trained_model_dir, mnist_test,
                                                                     tmp_path):
    images, labels = mnist_test
    body = tensors.bodies(images[104], int(labels[104]), systems.SERVED_MODEL, tmp_path)
    with systems.pytriton_reference(str(trained_model_dir), peer_python, max_batch_size=8,
                                    max_batch_wait_ms=1) as peer:
        client = triton_http.InferenceServerClient(peer.base_url.removeprefix("http://"))
        config = client.get_model_config(systems.SERVED_MODEL)
        assert config["max_batch_size"] == 8
        assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 1000
        tensor = triton_http.InferInput("inputdata", [2, 784], "FP32")
        tensor.set_data_from_numpy(images[[104, 105]].reshape(2, 784).astype(np.float32))
        answered = client.infer(systems.SERVED_MODEL, [tensor]).as_numpy("labels")
        assert answered.ravel().tolist() == labels[[104, 105]].tolist()
        # gRPC: tritonclient checks the label; the answer's framed size is what the load counts by.
        assert tensors.answer_bytes(peer.grpc_address, systems.SERVED_MODEL, body) > 5
        if shutil.which("h2load"):
            http_url = f"{peer.base_url}/v2/models/{systems.SERVED_MODEL}/infer"
            done, _, _ = tensors.h2load(http_url, 2, 1, body.http_body,
                                        [f"{tensors.HEADER_LENGTH}: {body.http_header_length}"], h1=True,
                                        log=tmp_path / "h2load.log")
            assert done and all(status == 200 for status, _ in done)
        process = peer.child.process
        started = peer.pids()["server"]
        assert process is not None and started[0] == process.pid and len(started) > 1  # Triton's server below it
    assert process.poll() is not None
    # Stopped with the block, Triton's server and the model's process with it (init reaps them).
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in started if Path(f"/proc/{pid}").exists()]
