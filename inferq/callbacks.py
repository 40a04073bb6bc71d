"""A job's callback: its URL checked, its final record signed, its deliveries claimed and recorded.

A job submitted with a ``callback`` URL has its final record (as ``GET /jobs/<id>`` shows it) POSTed
there once it ends. The finish script queues it, due at once, in a sorted set
(``inferq.keys.CALLBACKS_DUE``), in the same script that writes the outcome
(``inferq.jobs._ENDED``), so no job ends without its callback queued, whatever dies after. The
workers' deliverers (``worker.callback_delivery``) claim due deliveries here: a claim moves the
job's due time to when the claim's lease ends and writes the claim's token on the job, so that a
deliverer that dies leaves the job due again when its lease ends, and only the token's holder
records the result. Delivery is at least once: a deliverer that dies after the receiver took the
POST but before recording it has it sent again, with the same ``webhook-id``.

Signing follows Standard Webhooks (https://www.standardwebhooks.com/, v1): headers ``webhook-id``
(the job id, the same on every attempt, for receivers to drop duplicates), ``webhook-timestamp``
(unix seconds of this attempt), and ``webhook-signature``: ``v1,`` and the base64 of
HMAC-SHA256 over ``<id>.<timestamp>.<body>`` keyed with the secret's bytes (CALLBACK_SECRET is
``whsec_`` and their base64, as the standard's libraries take it). Receivers reject a timestamp
far from their clock, against replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import urllib.parse
from collections.abc import Sequence

import redis

from inferq import keys
from inferq.lua import Layout

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
#: Longest callback URL taken.
MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"


class CallbackUrlError(ValueError):
    """A callback URL that is not taken: ``status`` 400 for one that is not an http(s) URL, 422 for
    one outside CALLBACK_ALLOWED_URLS (or callbacks not enabled)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _normal(url: str) -> str:
    # A prefix or URL without a path ends its host with "/": "https://hooks.example" must not allow
    # "https://hooks.example.evil.net" nor "https://hooks.example@evil.net".
    parts = urllib.parse.urlsplit(url)
    return url if parts.path else urllib.parse.urlunsplit(parts._replace(path="/"))


def check_url(url: str, allowed: Sequence[str]) -> str:
    """``url`` if it may be called back: http(s), no credentials, starting with one of ``allowed``
    (prefixes; none: callbacks are refused). Raises :class:`CallbackUrlError` otherwise."""
    if not allowed:
        raise CallbackUrlError(422, "callbacks are not enabled on this service (CALLBACK_ALLOWED_URLS is empty)")
    if len(url) > MAX_URL_LENGTH or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise CallbackUrlError(400, f"callback must be an http(s) URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise CallbackUrlError(400, f"callback {url!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackUrlError(400, f"callback {url!r} is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackUrlError(400, "callback URLs may not carry credentials")
    normal = _normal(url)
    if not any(normal.startswith(_normal(prefix)) for prefix in allowed):
        raise CallbackUrlError(422, f"callback {url!r} is not under an allowed prefix (CALLBACK_ALLOWED_URLS)")
    return url


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret. Raises ValueError for anything else."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must be {SECRET_PREFIX} followed by the base64 of the key's bytes")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except binascii.Error:
        raise ValueError(f"the part after {SECRET_PREFIX} is not base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"the key must be 24 to 64 bytes, got {len(key)}")
    return key


def new_secret() -> str:
    """A fresh CALLBACK_SECRET."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of ``body``: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"content-type": "application/json", "webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(key, message_id, timestamp, body)}


def verify(key: bytes, headers: dict[str, str], body: bytes, *, now: float, tolerance_s: float = 300) -> bool:
    """What a receiver checks (docs/callbacks.md has it to copy): a signature of ours among the
    header's, and a timestamp within ``tolerance_s`` of ``now``."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        timestamp = int(lowered["webhook-timestamp"])
        expected = signature(key, lowered["webhook-id"], timestamp, body)
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return any(hmac.compare_digest(expected, given) for given in lowered.get("webhook-signature", "").split())


def backoff_s(attempts: int, first_s: float) -> float:
    """The wait before the next try after ``attempts`` failed ones: ``first_s``, doubling."""
    return first_s * 2 ** max(0, min(attempts - 1, 30))


# KEYS: the due set, then one job key per id. ARGV: now, when the lease ends, the claim's token,
# then the job ids. Claims each job still due (another deliverer may have claimed it since it was
# read): its due time becomes the lease's end, and the token is written on the job. A job whose
# record is gone (expired) leaves the set. Answers the ids claimed.
_CLAIM_LAYOUT = Layout("claim_callbacks", keys=("due_set",), key_list="jobs", args=("now", "lease", "token"),
                       arg_list="job_ids", numbers={"now"})
_CLAIM = _CLAIM_LAYOUT.script("""
local claimed = {}
for j = 1, job_ids_count do
  local id, key = ARGV[job_ids_offset + j], KEYS[jobs_offset + j]
  local due = redis.call('ZSCORE', due_set, id)
  if due and tonumber(due) <= now then
    if redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', due_set, id)
    else
      redis.call('ZADD', due_set, 'XX', lease, id)
      redis.call('HSET', key, 'callback_lease', token)
      claimed[#claimed + 1] = id
    end
  end
end
return claimed
""")

# KEYS: the due set and the job. ARGV: the job id, the claim's token, the status to record
# (pending: tried again at ``retry_at``), the error ('' for none), the time of the next try. Only the
# claim's holder records; answers whether it did.
_RECORD_LAYOUT = Layout("record_callback", keys=("due_set", "job"),
                        args=("job_id", "token", "status", "last_error", "retry_at"))
_RECORD = _RECORD_LAYOUT.script("""
if redis.call('HGET', job, 'callback_lease') ~= token then
  return 0
end
redis.call('HINCRBY', job, 'callback_attempts', 1)
redis.call('HSET', job, 'callback_status', status, 'callback_error', last_error)
redis.call('HDEL', job, 'callback_lease')
if status == 'pending' then
  redis.call('ZADD', due_set, retry_at, job_id)
else
  redis.call('ZREM', due_set, job_id)
end
return 1
""")


class Deliveries:
    """The due callbacks in Redis, as the deliverers claim and record them."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._claim = client.register_script(_CLAIM)
        self._record = client.register_script(_RECORD)

    def claim(self, now: float, lease_s: float, limit: int = 1) -> list[tuple[str, str]]:
        """Up to ``limit`` due deliveries, each (job id, claim token), leased for ``lease_s``."""
        due = [job_id.decode() for job_id in self._redis.zrangebyscore(keys.CALLBACKS_DUE, "-inf", now,
                                                                       start=0, num=limit)]
        if not due:
            return []
        token = secrets.token_hex(8)
        claimed = _CLAIM_LAYOUT.call(self._claim, due_set=keys.CALLBACKS_DUE, jobs=[*map(keys.job, due)], now=now,
                                     lease=now + lease_s, token=token, job_ids=due)
        return [(job_id.decode(), token) for job_id in claimed]

    def next_due(self) -> float | None:
        """When the next delivery is due (unix seconds), if any is queued."""
        first = self._redis.zrange(keys.CALLBACKS_DUE, 0, 0, withscores=True)
        return first[0][1] if first else None

    def record(self, job_id: str, token: str, status: str, *, error: str | None = None,
               retry_at: float | None = None) -> bool:
        """Record an attempt's result under the claim ``token``: ``delivered``, ``failed`` for good,
        or ``pending`` to be tried again at ``retry_at``. False where the claim was lost (its lease
        ended and another deliverer took it)."""
        return bool(_RECORD_LAYOUT.call(self._record, due_set=keys.CALLBACKS_DUE, job=keys.job(job_id), job_id=job_id,
                                        token=token, status=status, last_error=error or "", retry_at=retry_at or 0))
