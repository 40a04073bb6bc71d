"""Writes that outlive their master: each round trip of writes followed by Redis's WAIT.

Redis replicates asynchronously: the master acknowledges a write before any replica has it, and if
the master dies then, the replica promoted in its place never saw it. WAIT blocks until a number
of replicas acknowledged every earlier write *of its own connection*, so it goes on the same
pipeline as the writes: one round trip still.

It waits for the number of replicas asked for, or for as many as the master has online if that is
fewer: a failover promotes one of those, and with none online there is none to promote (the master
then holds the data alone, as a Redis without replicas does). So after a failover that used up the
only replica, writes go on, unwaited, until a replica is back. Which replicas are online is read
with ROLE at the end of each round trip, for the next one.
"""

from __future__ import annotations

from collections.abc import Callable

import redis


class NotReplicated(redis.RedisError):
    """Fewer replicas than asked for acknowledged a write in time: a failover could lose it.

    The writes were made on the master all the same: ``replies`` holds their replies."""

    def __init__(self, message: str, replies: list | None = None) -> None:
        super().__init__(message)
        self.replies = replies or []


class ReplicatedWrites:
    def __init__(self, client: redis.Redis, *, replicas: int, timeout_ms: int) -> None:
        """``replicas``: how many must hold each round trip's writes (0: none, and no WAIT);
        ``timeout_ms``: how long to wait for them."""
        self._redis = client
        self._replicas = replicas
        self._timeout_ms = timeout_ms
        #: Replicas the master had online at the last look; None before the first.
        self._online: int | None = None

    def execute(self, commands: Callable[[redis.client.Pipeline], object]) -> list:
        """The replies of the commands ``commands`` puts on a pipeline, once the replicas hold them.

        Raises :class:`NotReplicated` (with the replies) if they did not acknowledge in time: the
        writes are on the master, and may or may not survive it.
        """
        if not self._replicas:
            with self._redis.pipeline(transaction=False) as pipe:
                commands(pipe)
                return pipe.execute()
        if self._online is None:
            self._online = _online(self._redis.role())
        awaited = min(self._replicas, self._online)
        with self._redis.pipeline(transaction=False) as pipe:
            commands(pipe)
            if awaited:
                pipe.wait(awaited, self._timeout_ms)
            pipe.role()
            replies = pipe.execute()
        self._online = _online(replies.pop())
        if awaited and (acked := replies.pop()) < awaited:
            raise NotReplicated(f"{acked} of {awaited} replicas acknowledged the write within {self._timeout_ms} ms",
                                replies)
        return replies


def _online(role: list) -> int:
    """Replicas online, from ROLE's answer: on a master, ``["master", offset, [[ip, port, offset], ...]]``."""
    return len(role[2]) if role[0] in (b"master", "master") else 0
