"""docker-compose.yml and the Dockerfile, checked without a Docker engine: their structure, and each
service's command run here as the container would run it."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import redis
import yaml

from api import serve as api_serve
from inferq.settings import API_SERVERS, Settings
from launcher.processes import free_port, redis_answers
from tests.conftest import REPO
from tests.support.models import build_model
from tests.support.processes import ApiProcess, WorkerProcess
from tests.support.waiting import wait_for

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]




def test_the_services_and_how_they_start():
    assert set(SERVICES) == {"redis", "trainer", "worker", "api", "grpc", "flower", "worker-gpu"}
    for name in ("worker", "api", "grpc", "flower", "worker-gpu"):
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert SERVICES["trainer"]["restart"] == "no"
    for name in ("redis", "worker", "api", "grpc", "flower", "worker-gpu"):
        assert SERVICES[name]["restart"] == "unless-stopped", name
    assert SERVICES["flower"]["profiles"] == ["monitoring"]
    assert SERVICES["worker-gpu"]["profiles"] == ["gpu"]
    assert SERVICES["api"]["ports"] == ["${PORT:-8080}:8080"]
    assert SERVICES["grpc"]["ports"] == ["${GRPC_PORT:-8001}:8001"]
    assert SERVICES["grpc"]["expose"] == [str(Settings().grpc_metrics_port)]  # its metrics, not published
    assert SERVICES["grpc"]["command"] == ["python", "-m", "api.grpc"]


def test_redis_persists_and_is_health_checked():
    redis_service = SERVICES["redis"]
    assert "--appendonly" in redis_service["command"] and "yes" in redis_service["command"]
    assert redis_service["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "redis-data:/data" in redis_service["volumes"] and redis_service["working_dir"] == "/data"


def _default(value: str) -> str:
    """What compose makes of ``value`` with no variable set: ``${NAME:-default}`` is ``default``."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_the_model_volume_is_written_by_the_trainer_and_read_by_workers():
    assert "models:/models" in SERVICES["trainer"]["volumes"]
    assert "models:/models:ro" in SERVICES["worker"]["volumes"]
    assert set(COMPOSE["volumes"]) == {"redis-data", "models", "mnist-data"}
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            assert _default(volume).split(":")[0] in COMPOSE["volumes"], volume
    # MNIST_DATA=<a host directory> mounts the IDX files there for the trainer, instead of downloading.
    assert "${MNIST_DATA:-mnist-data}:/data/mnist" in SERVICES["trainer"]["volumes"]


def test_every_compose_runs_the_file_the_project_named_in_env():
    # Debian's docker-compose 1.29 refuses a top-level name; every version reads .env's.
    assert set(COMPOSE) <= {"services", "volumes"} | {key for key in COMPOSE if key.startswith("x-")}
    env = dict(line.split("=", 1) for line in (REPO / ".env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env == {"COMPOSE_PROJECT_NAME": "inferq"}


def test_the_images_can_be_replaced_for_offline_and_mirrored_registries():
    assert re.fullmatch(r"\$\{REDIS_IMAGE:-redis:\d+\.\d+\.\d+-alpine\}", SERVICES["redis"]["image"])
    for name in ("api", "grpc", "worker", "trainer", "flower", "worker-gpu"):
        base = SERVICES[name]["build"]["args"]["PYTHON_IMAGE"]
        assert re.fullmatch(r"\$\{PYTHON_IMAGE:-python:\d+\.\d+\.\d+-slim-\w+\}", base), name


def test_the_api_image_is_built_without_tensorflow():
    assert SERVICES["api"]["build"]["target"] == SERVICES["flower"]["build"]["target"] == "api"
    assert SERVICES["grpc"]["build"]["target"] == "api"
    assert SERVICES["api"]["image"] != SERVICES["worker"]["image"]
    for name in ("worker", "trainer", "worker-gpu"):
        assert SERVICES[name]["build"]["target"] == "worker", name
    assert SERVICES["worker"]["build"]["args"]["EXTRAS"] == "cpu"
    dockerfile = (REPO / "Dockerfile").read_text()
    api_stage = dockerfile.split("AS build-api", 1)[1].split("\nFROM ", 1)[0]
    assert 'pip install ".[monitoring]"' in api_stage and "EXTRAS" not in api_stage


def test_redis_refuses_writes_at_its_memory_limit_rather_than_evicting_jobs():
    command = SERVICES["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--maxmemory") + 1] == "${REDIS_MAXMEMORY:-1gb}"


def test_flower_is_published_on_the_loopback_only_and_reads_its_login():
    assert SERVICES["flower"]["ports"] == ["127.0.0.1:${FLOWER_PORT:-5555}:5555"]
    assert SERVICES["flower"]["environment"] == ["FLOWER_BASIC_AUTH"]


def test_workers_are_healthy_while_they_send_heartbeats():
    assert SERVICES["worker"]["healthcheck"]["test"] == ["CMD", "python", "-m", "worker.liveness"]
    assert importlib.util.find_spec("worker.liveness") is not None


def test_the_api_health_check_is_readiness():
    check = SERVICES["api"]["healthcheck"]["test"]
    assert "/readyz" in " ".join(check)


def test_the_grpc_health_check_asks_grpc_health_for_the_inference_service():
    check = SERVICES["grpc"]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    assert "service='inference.GRPCInferenceService'" in check[3] and "127.0.0.1:8001" in check[3]
    assert SERVICES["grpc"]["environment"] == SERVICES["api"]["environment"]


def test_gpu_workers_reserve_an_nvidia_device_and_install_tensorflow_with_cuda():
    gpu = SERVICES["worker-gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert gpu["build"]["args"]["EXTRAS"].split(",")[0] == "gpu"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(requirement.startswith("tensorflow[and-cuda]") for requirement in extras["gpu"])


def test_the_settings_compose_passes_are_settings():
    names = {field.name.upper() for field in dataclasses.fields(Settings)}
    environment = SERVICES["api"]["environment"]
    assert set(environment) <= names
    for service in ("worker", "api", "trainer"):
        assert SERVICES[service]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_every_command_exists_in_the_project():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name, service in SERVICES.items():
        command = service["command"]
        if name == "redis":
            assert command[0] == "redis-server"
        elif command[0] == "celery" and "-A" in command:
            assert importlib.util.find_spec(command[command.index("-A") + 1]) is not None
        elif command[0] == "celery":
            assert "flower" in command and any(req.startswith("flower") for req in extras["monitoring"])
        elif command[:3] == ["python", "-m", "api.serve"]:
            assert importlib.util.find_spec("api.serve") is not None
            assert (REPO / api_serve.GUNICORN[api_serve.GUNICORN.index("-c") + 1]).is_file()
        elif command[:3] == ["python", "-m", "api.grpc"]:
            assert importlib.util.find_spec("api.grpc.__main__") is not None
        else:
            assert command[:3] == ["python", "-m", "trainer"]
            assert importlib.util.find_spec("trainer.__main__") is not None
            assert (REPO / command[command.index("--params") + 1]).is_file()


def test_the_dockerfile_is_multi_stage_pinned_and_not_root():
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", dockerfile, re.MULTILINE)
    assert len(stages) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    user = re.findall(r"^USER\s+(\S+)$", dockerfile, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert 'pip install ".[${EXTRAS}]"' in dockerfile
    for image in (_default(SERVICES["redis"]["image"]),):
        assert not image.endswith(":latest") and re.search(r":\d+\.\d+\.\d+", image)


def compose_env(**overrides: object) -> dict[str, str]:
    """The settings compose gives the services, with addresses changed to this machine's."""
    import os

    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    for name, value in SERVICES["api"]["environment"].items():
        default = re.fullmatch(r"\$\{\w+:-(.*)\}", str(value))
        env[name] = default.group(1) if default else str(value)
    env.update({name.upper(): str(value) for name, value in overrides.items()})
    return env


def test_each_service_command_runs_here(redis_url, tmp_path, digit_104):
    """redis, worker and api run their compose commands; the api's health check passes under each server."""
    if shutil.which("redis-server"):
        port = free_port()
        command = [*map(_default, SERVICES["redis"]["command"]), "--port", str(port), "--dir", str(tmp_path)]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            wait_for(lambda: redis_answers(client), 10, "compose's redis command")
            client.set("k", "v")
            wait_for(lambda: any(tmp_path.rglob("*.aof")), 10, "the append-only file")
        finally:
            server.terminate()
            server.wait(10)

    build_model(tmp_path / "models", 1, label=9)
    env = compose_env(redis_url=redis_url, model_dir=tmp_path / "models", heartbeat_interval_s=0.5)
    # As in the image: the service's command, its executable from the environment the image installs.
    worker = WorkerProcess(env, tmp_path / "worker.log", command=[sys.executable, "-m", *SERVICES["worker"]["command"]])
    try:
        worker.wait_serving()
        for server in API_SERVERS:
            api = ApiProcess(dict(env, API_SERVER=server), tmp_path / f"api-{server}.log", free_port(),
                             command=[sys.executable, *SERVICES["api"]["command"][1:]])
            try:
                check = [part.replace("127.0.0.1:8080", api.base_url.removeprefix("http://"))
                         for part in SERVICES["api"]["healthcheck"]["test"][2:]]
                assert subprocess.run([sys.executable, *check], timeout=30).returncode == 0, server
                assert _client(api.base_url)(digit_104)["labels"] == [9], server
            finally:
                assert api.stop() == 0, server
    finally:
        worker.stop()


def _client(base_url: str):
    import json
    import urllib.request

    def recognize(png: bytes) -> dict:
        body = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + png + b"\r\n--b--\r\n"
        request = urllib.request.Request(f"{base_url}/recognize", data=body,
                                         headers={"Content-Type": "multipart/form-data; boundary=b"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    return recognize




@pytest.mark.skipif(importlib.util.find_spec("flower") is None, reason="flower is in the monitoring extra")
def test_the_flower_command_runs_here():
    command = SERVICES["flower"]["command"]
    result = subprocess.run([sys.executable, "-m", *command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "flower" in result.stdout.lower()
