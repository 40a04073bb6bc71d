"""CPU time each part of a running system takes over a measurement, read from /proc.

Which part of the system a load costs, in cores, and so whether two loads can both fit on the
machine: on two cores, a lane that takes 1.8 of them alone leaves little for another.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

Roles = Callable[[], dict[str, list[int]]]


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of ``pid`` so far; 0 for a process that has ended."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores each role took while the block ran: ``with CpuMeter(roles) as meter: ...; meter.cores``.
    ``roles`` names the processes of each role; it is asked at the start, and the same processes
    are read at the end."""

    def __init__(self, roles: Roles) -> None:
        self._roles = roles
        self.cores: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._pids = self._roles()
        self._started = time.monotonic()
        self._before = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self._started
        after = self._read()
        # A process that ended meanwhile reads 0: it adds nothing rather than taking away.
        self.cores = {role: round(sum(max(0.0, after[pid] - self._before[pid]) for pid in pids) / elapsed, 2)
                      for role, pids in self._pids.items()}

    def _read(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pids in self._pids.values() for pid in pids}
