"""Security properties that need real processes: TLS and passwords to Redis, JSON-only messages."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
import redis

from inferq.celery_app import make_celery
from inferq.settings import Settings
from launcher.processes import free_port
from tests.conftest import png_bytes
from tests.support.models import build_model
from tests.support.processes import WorkerProcess, worker_env
from tests.support.waiting import wait_for


@pytest.fixture
def tls_redis(tmp_path):
    """A redis-server that speaks only TLS and wants a password; its URL names the CA to trust."""
    if not (shutil.which("redis-server") and shutil.which("openssl")):
        pytest.skip("needs redis-server and openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", cert,
                               "--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no",
                               "--requirepass", "s3cret", "--save", "", "--dir", tmp_path],
                              stdout=subprocess.DEVNULL)
    url = f"rediss://:s3cret@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    client = redis.Redis.from_url(url)

    def answers() -> bool:
        try:
            return client.ping()
        except redis.RedisError:
            return False

    wait_for(answers, 10, "the TLS Redis")
    yield url, port
    server.terminate()
    server.wait(10)


def test_the_system_runs_over_tls_with_a_password(tls_redis, tmp_path, mnist_test):
    url, port = tls_redis
    build_model(tmp_path / "models", 1, label=3)
    worker = WorkerProcess(worker_env(url, tmp_path / "models", "q"), tmp_path / "worker.log")
    try:
        worker.wait_serving()
        from api.app import create_app

        client = create_app(Settings(redis_url=url, queue_name="q")).test_client()
        answer = client.post("/recognize", data={"image": [(io.BytesIO(png_bytes(mnist_test[0][0])), "a.png")]})
        assert answer.status_code == 200 and answer.get_json()["labels"] == [3]
    finally:
        worker.stop()
    # The plain-text port is off, and the password is required.
    with pytest.raises(redis.RedisError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url.replace(":s3cret@", ":wrong@")).ping()


def test_workers_refuse_pickled_messages(start_worker, redis_url, tmp_path):
    """A message that is code (pickle) is rejected unread; only JSON is accepted."""
    build_model(tmp_path / "models", 1, label=3)
    worker = start_worker(tmp_path / "models")
    app = make_celery(Settings(redis_url=redis_url, queue_name="q"))
    app.send_task("inferq.recognize", args=[{"v": 1, "jobs": []}], serializer="pickle", ignore_result=True)
    wait_for(lambda: "Refusing to deserialize untrusted content of type pickle" in worker.log(), 20,
             "the worker to refuse the pickled message")
    assert worker.process.poll() is None
