"""How every inferq process connects to Redis: one Redis, or the master a group of Sentinels names."""

from __future__ import annotations

import dataclasses
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

#: The redis-py versions (major.minor) whose low-level calls inferq was written and tested for.
TESTED_REDIS_PY = ("8.1",)

#: redis-py's calls below its command methods that inferq makes, to send a command now and read its
#: reply later (so a round trip overlaps other work) or to read pub/sub messages itself;
#: ``tests/contracts/test_redis_py.py`` checks each as it is used, and fails naming these.
REDIS_PY_LOW_LEVEL = (
    "Connection.send_command(*args) then read_response(), replies read in the order sent, a script "
    "Redis lacks raising NoScriptError from read_response (inferq.jobs: progress_reports)",
    "Connection.pack_commands([...]) and send_packed_command(), then Redis.parse_response(connection, "
    "command_name) for each, a BLPOP that timed out read as None (inferq.broker: the claim)",
    "Connection.can_read(timeout=) and read_response(push_request=True) on a subscribed connection, "
    "returning [b'message', channel, data] lists (api.queue.job_events)",
)
#: The scheme of a Sentinel's address in REDIS_URL, as kombu spells it.
SENTINEL_SCHEME = "sentinel"
#: The port a Sentinel listens on when its address names none.
SENTINEL_PORT = 26379


def sentinel_options() -> dict:
    """How inferq's clients talk to the Sentinels themselves (kombu's and Celery's too): small
    queries, so a short timeout, and no retries, since each Sentinel is asked in turn. redis-py's
    default retries with backoff would hold a request for seconds per Sentinel that is down."""
    return {"socket_connect_timeout": 2.0, "socket_timeout": 2.0, "retry": Retry(NoBackoff(), 0)}


def names_sentinels(url: str) -> bool:
    """Whether ``url`` names Sentinels (``sentinel://host:port;sentinel://...``) rather than a Redis."""
    return urlsplit(url.split(";", 1)[0]).scheme == SENTINEL_SCHEME


@dataclasses.dataclass(frozen=True)
class SentinelAddress:
    """What a ``sentinel://`` REDIS_URL says: the Sentinels, and the database and credentials of the
    master they name (from the first address that has them, as kombu reads it)."""

    sentinels: list[tuple[str, int]]
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelAddress:
        sentinels: list[tuple[str, int]] = []
        db, username, password = None, None, None
        for part in filter(None, (piece.strip() for piece in url.split(";"))):
            parts = urlsplit(part)
            if parts.scheme != SENTINEL_SCHEME or not parts.hostname:
                raise ValueError(f"{part!r} in REDIS_URL is not a Sentinel's address (sentinel://host:port)")
            sentinels.append((parts.hostname, parts.port or SENTINEL_PORT))
            if db is None and parts.path.strip("/"):
                db = int(parts.path.strip("/"))
            if password is None and parts.password is not None:
                username, password = unquote(parts.username or "") or None, unquote(parts.password)
        return cls(sentinels, db or 0, username, password)


def connect(url: str, *, sentinel_master: str | None = None, socket_timeout_s: float = 10.0) -> redis.Redis:
    """A client for ``url``: ``redis://``, ``rediss://`` for TLS, ``unix://`` (passwords in the URL),
    or Sentinels, ``sentinel://host1:26379;sentinel://host2:26379``, for the master they know as
    ``sentinel_master`` (REDIS_SENTINEL_MASTER). Such a client asks the Sentinels where the master
    is whenever it opens a connection, so after a failover it reconnects to the new one; while
    there is none, its commands fail with ``MasterNotFoundError``, a ``redis.ConnectionError``.

    ``socket_timeout_s`` bounds a wait on a Redis that stopped answering; it must exceed the longest
    blocking call made with the client. A failed command is retried twice within half a second,
    enough to ride over a dropped connection but not to keep a request hanging on a Redis that is
    down (or a failover under way): that is a quick 503. A command that timed out may have run,
    and is sent again: so the job store's writes along a job's path (admit, start, finish, withdraw)
    can run twice without effect: each script finds what it wrote before (``inferq.jobs``).
    """
    options = {
        "socket_connect_timeout": 2.0,
        "socket_timeout": socket_timeout_s,
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=2),
    }
    if not names_sentinels(url):
        return redis.Redis.from_url(url, **options)
    if not sentinel_master:
        raise ValueError("REDIS_URL names Sentinels: REDIS_SENTINEL_MASTER must name their master")
    address = SentinelAddress.parse(url)
    sentinels = Sentinel(address.sentinels, sentinel_kwargs=sentinel_options())
    return sentinels.master_for(sentinel_master, db=address.db, username=address.username,
                                password=address.password, **options)
