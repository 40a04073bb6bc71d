"""The peer's venv is built once and again only when its pins change; its server finds the libpython of
the interpreter it runs under; the summary puts its figures beside inferq's, carrier by carrier."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from bench import peers, tensors
from bench.load import SyncPoint
from bench.scenarios import ModelRun


def _venv(root: Path, requirements: Path, built_from: str | None) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text("")
    if built_from is not None:
        (root / peers.BUILT_FROM).write_text(built_from)
    return root


def test_a_venv_counts_as_built_only_from_the_pins_there_are_now(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("nvidia-pytriton==0.7.0\nnumpy<2\n")
    assert peers.is_built(_venv(tmp_path / "same", requirements, requirements.read_text()), requirements)
    assert not peers.is_built(_venv(tmp_path / "older", requirements, "nvidia-pytriton==0.6.0\n"), requirements)
    assert not peers.is_built(_venv(tmp_path / "unfinished", requirements, None), requirements)
    assert not peers.is_built(tmp_path / "absent", requirements)


def test_the_pins_are_pytritons_and_the_projects_tensorflow():
    pins = [line for line in peers.REQUIREMENTS.read_text().splitlines() if line and not line.startswith("#")]
    assert sorted(pins) == ["numpy<2", "nvidia-pytriton==0.7.0", "tensorflow-cpu==2.21.0"]
    project = Path(peers.ROOT / "pyproject.toml").read_text()
    assert '"tensorflow-cpu==2.21.0"' in project


def test_the_server_finds_its_interpreters_libpython_first():
    env = peers.server_env({"LD_LIBRARY_PATH": "/opt/other"})
    assert env["LD_LIBRARY_PATH"].split(":") == [sysconfig.get_config_var("LIBDIR"), "/opt/other"]
    assert "LD_LIBRARY_PATH" in peers.server_env({})


def test_the_command_serves_the_model_as_named_with_inferqs_batching_limits(tmp_path):
    command = peers.server_command(Path("/venv/bin/python"), tmp_path, http_port=1, grpc_port=2, metrics_port=3,
                                   max_batch_size=64, max_batch_wait_ms=5.0, name="mnist")
    assert command[:2] == ["/venv/bin/python", str(peers.SERVER)]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert options == {"--model-dir": str(tmp_path.resolve()), "--name": "mnist", "--http-port": "1",
                       "--grpc-port": "2", "--metrics-port": "3", "--max-batch-size": "64",
                       "--max-queue-delay-ms": "5"}


def _point(clients: int, rps: float, p50: float) -> SyncPoint:
    return SyncPoint(concurrency=clients, answered=int(rps), rps=rps, p50_ms=p50, p99_ms=2 * p50, errors=0,
                     wrong_labels=0)


def test_the_summary_says_how_inferq_compares_with_the_peer_on_each_carrier():
    run = ModelRun.__new__(ModelRun)
    run.tensors = {tensors.HTTP: [_point(1, 200, 4.0), _point(64, 900, 70.0)],
                   tensors.GRPC: [_point(1, 300, 3.0), _point(64, 1500, 40.0)],
                   tensors.PEER_HTTP: [_point(1, 100, 8.0), _point(64, 1800, 30.0)],
                   tensors.PEER_GRPC: [_point(1, 120, 7.0), _point(64, 1500, 35.0)]}
    summary = run._tensor_summary()
    assert summary["tensor_http_p50_ms_c1"] == 4.0
    peer = summary["pytriton"]
    assert (peer["http_rps_c64"], peer["http_p50_ms_c64"], peer["http_p99_ms_c64"]) == (1800, 30.0, 60.0)
    assert (peer["inferq_vs_pytriton_http_c64"], peer["inferq_vs_pytriton_grpc_c64"]) == (0.5, 1.0)
    assert peer["inferq_vs_pytriton_http_c1"] == 2.0
    del run.tensors[tensors.PEER_HTTP], run.tensors[tensors.PEER_GRPC]
    assert "pytriton" not in run._tensor_summary()
