"""``python -m worker.liveness``: is a worker on this host still sending heartbeats? For Kubernetes.

Exits 0 when Redis holds a live heartbeat of a worker process on this host (a pod's hostname is
its name), 1 when it holds none. A heartbeat is written by a thread of the model-holding process
and expires after three missed beats, so a process that died, hung or lost Redis stops passing.

When Redis itself does not answer it exits 0 and says so: the fault is not the worker's, and
restarting every worker into a Redis outage would only add model reloads to the recovery.

Imports neither TensorFlow nor Celery: an exec probe pays a fresh interpreter each period.
"""

from __future__ import annotations

import socket
import sys

import redis

from inferq import keys
from inferq.redis_connection import connect
from inferq.settings import Settings

LIVE = 0
MISSING = 1


def live_workers(client: redis.Redis, hostname: str) -> list[str]:
    """Names of this host's worker processes whose heartbeat has not expired."""
    # Each process registers as ``<hostname>:<pid>`` (worker.heartbeat); the sorted set is small,
    # unlike a SCAN over a keyspace that holds every job.
    names = [name.decode() for name in client.zrange(keys.WORKERS, 0, -1)]
    mine = [name for name in names if name.rpartition(":")[0] == hostname]
    if not mine:
        return []
    beats = client.mget([keys.worker(name) for name in mine])
    return [name for name, beat in zip(mine, beats, strict=True) if beat is not None]


def main(hostname: str | None = None) -> int:
    hostname = hostname or socket.gethostname()
    settings = Settings.from_env()
    client = connect(settings.redis_url, socket_timeout_s=3.0)
    try:
        live = live_workers(client, hostname)
    except redis.RedisError as exc:
        print(f"liveness: Redis does not answer ({exc}); not blaming the worker", file=sys.stderr)
        return LIVE
    finally:
        client.close()
    if not live:
        print(f"liveness: no live heartbeat from a worker on {hostname}", file=sys.stderr)
        return MISSING
    print(f"liveness: {', '.join(live)}")
    return LIVE


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
