"""What Redis itself spent: its CPU time and the commands it ran, read from INFO, between two looks."""

from __future__ import annotations

import dataclasses

import redis


@dataclasses.dataclass(frozen=True)
class RedisUsage:
    #: CPU seconds of the server process, user and system.
    cpu_s: float
    #: Commands run, by name: a script run counts as one EVALSHA and as each command it calls.
    commands: dict[str, int]

    @classmethod
    def read(cls, client: redis.Redis) -> RedisUsage:
        cpu = client.info("cpu")
        stats = client.info("commandstats")
        return cls(float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
                   {name.removeprefix("cmdstat_"): int(fields["calls"]) for name, fields in stats.items()})

    def since(self, before: RedisUsage) -> RedisUsage:
        names = set(self.commands) | set(before.commands)
        spent = {name: self.commands.get(name, 0) - before.commands.get(name, 0) for name in names}
        return RedisUsage(self.cpu_s - before.cpu_s, {name: calls for name, calls in spent.items() if calls})

    @property
    def total_commands(self) -> int:
        return sum(self.commands.values())
