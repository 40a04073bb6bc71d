"""Job changes for the requests that watch a job, from one pub/sub connection per API process.

The job store's scripts publish each change of a job (running, progress, its outcome) on the job's
channel (``inferq.keys.job_events``). A request that waits for a job to change (a long poll, an
event stream: ``api.queue.job_watch``) registers a :class:`Watch`; the process's one connection is
subscribed to the channels of the jobs watched, and one thread reads it and wakes the watches of
each channel that has news. A watching request so costs no Redis connection of its own, and a
quiet wait costs no Redis call.

A message says that the record changed, nothing more: the watcher reads the record, which is the
truth. Pub/sub delivers at most once: a watch is woken whenever the connection is made again (it
may have missed a change), and its watcher re-reads the record now and then however quiet the
channel (``api.queue.job_watch.RECHECK_S``).

The connection is written (SUBSCRIBE, UNSUBSCRIBE) by the requests, under a lock, and read by the
thread alone. Redis confirms subscriptions in the order they were sent, so each confirmation is
matched to the oldest watch of its channel waiting for one: :meth:`JobEvents.watch` returns only
once the channel is subscribed, and a record read after that cannot miss a change published since.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Iterator

import redis

from inferq import keys

log = logging.getLogger(__name__)

#: Seconds the thread waits for news before looking whether it should stop.
POLL_S = 1.0
#: Seconds a watch waits for its subscription to be confirmed; past it the watcher goes on (its
#: re-reads cover a change it might miss).
SUBSCRIBE_TIMEOUT_S = 2.0
#: Seconds between attempts to connect again after the connection was lost.
RECONNECT_S = 0.5


class Watch:
    """One request's watch on one job: woken when the job may have changed."""

    def __init__(self) -> None:
        self._changed = threading.Event()
        self._subscribed = threading.Event()

    def changed(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for news of the job; whether some came (since the last call)."""
        news = self._changed.wait(max(0.0, timeout_s))
        self._changed.clear()
        return news

    def _wake(self) -> None:
        self._changed.set()


class JobEvents:
    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._connection: redis.connection.AbstractConnection | None = None
        #: Held to write the connection and to change the tables below.
        self._lock = threading.Lock()
        self._watches: dict[bytes, list[Watch]] = {}
        #: Per channel, the watches whose SUBSCRIBE is not confirmed yet, oldest first.
        self._unconfirmed: dict[bytes, collections.deque[Watch]] = {}
        #: Set when a write failed: the thread then connects again and subscribes anew.
        self._broken = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[Watch]:
        """A watch on ``job_id``, its channel subscribed, for the block's time."""
        channel = keys.job_events(job_id).encode()
        watch = Watch()
        with self._lock:
            connection = self._connected()
            self._watches.setdefault(channel, []).append(watch)
            self._unconfirmed.setdefault(channel, collections.deque()).append(watch)
            try:
                connection.send_command("SUBSCRIBE", channel)
            except BaseException:
                self._broken = True
                self._leave(channel, watch)
                raise
        try:
            watch._subscribed.wait(SUBSCRIBE_TIMEOUT_S)
            yield watch
        finally:
            with self._lock:
                self._leave(channel, watch)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(POLL_S + 5)
        with self._lock:
            if self._connection is not None:
                self._connection.disconnect()

    def _connected(self) -> redis.connection.AbstractConnection:
        """The subscribed connection, made (and the thread that reads it started) on first use."""
        if self._connection is None:
            connection = self._pool.make_connection()
            # A health check would read a reply of its own off this connection, and take a message.
            connection.health_check_interval = 0
            connection.connect()
            self._connection = connection
            self._thread = threading.Thread(target=self._listen, args=(connection,), name="inferq-job-events",
                                            daemon=True)
            self._thread.start()
        return self._connection

    def _leave(self, channel: bytes, watch: Watch) -> None:
        watches = self._watches.get(channel, [])
        if watch in watches:
            watches.remove(watch)
        unconfirmed = self._unconfirmed.get(channel, collections.deque())
        for index, waiting in enumerate(unconfirmed):
            if waiting is watch:  # its confirmation is still to come: a stand-in takes it
                unconfirmed[index] = Watch()
        if watches:
            return
        del self._watches[channel]
        assert self._connection is not None
        try:
            self._connection.send_command("UNSUBSCRIBE", channel)
        except redis.RedisError as exc:  # the thread connects again, subscribed to what is watched then
            self._broken = True
            log.info("job events: could not unsubscribe (%s)", exc)

    def _listen(self, connection: redis.connection.AbstractConnection) -> None:
        # Nothing may end this loop but close(): every watching request of the process waits on it.
        while not self._stop.is_set():
            if self._broken:
                self._reconnect(connection)
                continue
            try:
                if not connection.can_read(timeout=POLL_S):
                    continue
                reply = connection.read_response(push_request=True)  # else redis-py hands them to a push handler
            except (redis.RedisError, OSError) as exc:
                log.warning("job events: Redis out of reach (%s); connecting again", exc)
                self._reconnect(connection)
                continue
            try:
                self._dispatch(reply)
            except Exception:
                log.exception("job events: skipped a reply it could not read: %.200r", reply)

    def _dispatch(self, reply: object) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return
        kind, channel = reply[0], reply[1]
        with self._lock:
            if kind == b"message":
                for watch in self._watches.get(channel, ()):
                    watch._wake()
            elif kind == b"subscribe":
                unconfirmed = self._unconfirmed.get(channel)
                if unconfirmed:
                    unconfirmed.popleft()._subscribed.set()
                    if not unconfirmed:
                        del self._unconfirmed[channel]

    def _reconnect(self, connection: redis.connection.AbstractConnection) -> None:
        """The connection made again and subscribed to every channel watched; every watch woken, as
        it may have missed a change meanwhile."""
        while not self._stop.is_set():
            with self._lock:
                connection.disconnect()
                try:
                    connection.connect()
                    if self._watches:
                        connection.send_command("SUBSCRIBE", *self._watches)
                except (redis.RedisError, OSError) as exc:
                    log.debug("job events: connecting again failed: %s", exc)
                else:
                    # Subscribed as sent: nobody waits for a confirmation that cannot come.
                    for unconfirmed in self._unconfirmed.values():
                        for watch in unconfirmed:
                            watch._subscribed.set()
                    self._unconfirmed.clear()
                    self._broken = False
                    for watches in self._watches.values():
                        for watch in watches:
                            watch._wake()
                    return
            self._stop.wait(RECONNECT_S)
