"""Redis commands a sync request costs, by process, and when each came: ``python -m bench.round_trips``.

Starts inferq (one worker, the API; the embedded Redis or REDIS_URL's), sends ``--requests`` one-image
``POST /recognize`` one after the other, as one wrk client does, and records every command Redis
ran meanwhile with MONITOR. Each command is put down to the process whose connection sent it (the
API's server processes, the worker and its children: their sockets, read from /proc), and commands
a script ran inside Redis are counted apart. Prints the commands per request by process and command,
and one request's timeline: the microseconds from its admission to each command after it, which
tells where a request's time goes between the API and the worker (the worker's wake-up, its steps
before and after the model call, the API's reading of the reply). MONITOR slows Redis a little:
the counts are exact, the times a little longer than without it.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import urllib.request
from pathlib import Path

import redis

from bench.bodies import MULTIPART


def socket_ports(pids: list[int]) -> set[int]:
    """Local TCP ports of the sockets the processes hold open."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # gone meanwhile, or not ours to read
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def role_of_port(roles: dict[str, list[int]]) -> dict[int, str]:
    return {port: role for role, pids in roles.items() for port in socket_ports(pids)}


class Monitor:
    """Every command Redis runs while the block runs: (seconds, client port or None for a script's, command)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self.commands: list[tuple[float, int | None, str]] = []
        self._stop = threading.Event()

    def __enter__(self) -> Monitor:
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        time.sleep(0.2)  # MONITOR is on once its first reply came; commands before are not seen
        return self

    def _listen(self) -> None:
        try:
            for command in self._monitor.listen():
                if self._stop.is_set():
                    break
                port = None if command.get("client_type") == "lua" else int(command.get("client_port") or 0)
                self.commands.append((float(command["time"]), port, command["command"]))
        except (redis.RedisError, OSError, ValueError):
            pass

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._client.ping()  # one more command, so that the listener sees the stop
        self._thread.join(5)
        self._monitor.__exit__(None, None, None)


def _name(command: str) -> str:
    return command.split(" ", 1)[0].upper()


def recognize(base: str, body: bytes) -> None:
    request = urllib.request.Request(f"{base}/recognize", data=body, headers=MULTIPART)
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def summary(commands: list[tuple[float, int | None, str]], ports: dict[int, str], requests: int) -> str:
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for _, port, command in commands:
        role = "in scripts" if port is None else ports.get(port, "other")
        counts[role, _name(command)] += 1
    lines = [f"{'process':<12}{'command':<12}{'per request':>12}"]
    for (role, name), count in sorted(counts.items()):
        lines.append(f"{role:<12}{name:<12}{count / requests:>12.2f}")
    return "\n".join(lines)


def timeline(commands: list[tuple[float, int | None, str]], ports: dict[int, str]) -> str:
    """The commands of the middle request: from one admission (an EVALSHA of the API's) to the next."""
    starts = [i for i, (_, port, command) in enumerate(commands)
              if port is not None and ports.get(port) == "api" and _name(command) == "EVALSHA"]
    if len(starts) < 3:
        return "(too few requests for a timeline)"
    first, last = starts[len(starts) // 2], starts[len(starts) // 2 + 1]
    t0 = commands[first][0]
    return "\n".join(f"{1e6 * (at - t0):>9.0f} us  {('script' if port is None else ports.get(port, 'other')):<8}"
                     f"{command[:90]}" for at, port, command in commands[first:last])


def _batches(base: str) -> float:
    from bench.scenarios import batch_totals

    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        return batch_totals(response.read().decode())[1]


def main(argv: list[str] | None = None) -> int:
    from bench import opening
    from bench.load import wrk

    parser = opening.parser("bench.round_trips", __doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=1,
                        help="more than 1: wrk's clients for --seconds instead (no timeline): per request and batch")
    parser.add_argument("--seconds", type=float, default=3)
    args = parser.parse_args(argv)
    setup = opening.setup("bench.round_trips")
    (model,) = setup.models(None, quick=True)
    paths = setup.bodies(20)
    body = paths[0].read_bytes()
    with opening.service(setup.work, model.model_dir, API_SERVER="gunicorn") as (redis_url, running):
        for _ in range(50):  # warm up: connections, the first model calls
            recognize(running.base_url, body)
        ports = role_of_port(running.pids())
        time.sleep(1.0)  # the workers' batch counts reach /metrics with their heartbeats (0.5 s here)
        before = _batches(running.base_url)
        with Monitor(redis.Redis.from_url(redis_url)) as monitor:
            if args.clients > 1:
                point = wrk(running.base_url, args.clients, args.seconds, paths)
                requests, seconds = point.answered, args.seconds
            else:
                requests, started = args.requests, time.perf_counter()
                for _ in range(requests):
                    recognize(running.base_url, body)
                seconds = time.perf_counter() - started
        time.sleep(1.0)
        batches = _batches(running.base_url) - before
    print(f"{requests} requests from {args.clients} client(s) in {batches:.0f} batches, {requests / seconds:.0f} "
          "a second (under MONITOR)")
    print(summary(monitor.commands, ports, requests))
    if args.clients > 1:
        return 0
    print("One request, microseconds after its admission:")
    print(timeline(monitor.commands, ports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
