"""Tenants: who a caller is, from its API key, and what share and limits of the service it has.

One description of a tenant for every front end (HTTP's ``api.auth``, gRPC's ``api.grpc.auth``):
a name (part of Redis keys and of the queues' names), a weight (its share of a lane's workers
under contention, ``inferq.broker``'s fair share) and two optional limits, on the items it has
queued and on the items a second it may queue (``inferq.jobs``'s admission).

Tenants come from TENANTS_FILE, a JSON file (a Kubernetes Secret mounted as a volume, say)::

    {"tenants": [
      {"name": "vision", "weight": 2, "max_queued_items": 50000, "max_items_per_s": 2000,
       "keys": ["sha256:<hex of the SHA-256 of the key>"]},
      {"name": "ads", "keys": ["sha256:..."]}]}

Keys are kept only as SHA-256 digests (``python -m inferq.tenants hash``): the file gives no key
away. A key given is hashed and compared with every digest in constant time
(``hmac.compare_digest``, all of them, whatever matched), so how long an answer takes does not
say how much of a guess matched or which tenant it was near. The file is read again when it
changes (checked at most once every ``check_every_s``): its modification time, inode or size, of
the file the path leads to, so that a Kubernetes Secret volume's update (a new file, swapped in by
renaming the ``..data`` symlink, whatever its modification time) is seen; a file that no longer
parses keeps the tenants read before, and says why in the log.

API_KEY, as before tenants, is the key of the tenant ``default`` (weight 1, no limits). With
neither setting, every caller is ``default``: one tenant, the whole service.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

#: The tenant of API_KEY, of an open service's callers, and of work queued before tenants.
DEFAULT_TENANT = "default"
#: Tenant names are parts of Redis keys and queue names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DIGEST_PREFIX = "sha256:"


class TenantsFileError(ValueError):
    """A tenants file that cannot be used: its message says where it is wrong."""


@dataclasses.dataclass(frozen=True)
class Tenant:
    name: str
    #: Its share of a lane's workers while others have work too, against the others' weights.
    weight: float = 1.0
    #: Items (images, tensor rows) it may have queued and running at once, all models and lanes
    #: together; None: only the lanes' limits.
    max_queued_items: int | None = None
    #: Items a second it may queue, on average (a token bucket holding a second's worth); None: any.
    max_items_per_s: float | None = None


DEFAULT = Tenant(DEFAULT_TENANT)


def key_digest(key: str | bytes) -> bytes:
    """The SHA-256 digest a key is kept as."""
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


def parse_tenants(text: str) -> list[tuple[bytes, Tenant]]:
    """The (key digest, tenant) pairs of a tenants file's text."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise TenantsFileError(f"not JSON: {exc}") from None
    entries = document.get("tenants") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise TenantsFileError('expected {"tenants": [...]}')
    pairs: list[tuple[bytes, Tenant]] = []
    names: set[str] = set()
    for position, entry in enumerate(entries):
        where = f"tenants[{position}]"
        if not isinstance(entry, dict):
            raise TenantsFileError(f"{where} must be an object")
        unknown = set(entry) - {"name", "weight", "max_queued_items", "max_items_per_s", "keys"}
        if unknown:
            raise TenantsFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        name = entry.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise TenantsFileError(f"{where}.name must be letters, digits, '_', '.', '-' (64 at most), got {name!r}")
        if name in names:
            raise TenantsFileError(f"{where}: tenant {name!r} is named twice")
        names.add(name)
        tenant = Tenant(name, _number(entry, "weight", where, 1.0),
                        _limit(entry, "max_queued_items", where, int), _limit(entry, "max_items_per_s", where, float))
        digests = entry.get("keys", [])
        if not isinstance(digests, list) or not digests:
            raise TenantsFileError(f"{where}.keys must be a non-empty list of 'sha256:<hex>'")
        for digest in digests:
            pairs.append((_digest(digest, f"{where}.keys"), tenant))
    return pairs


def _number(entry: dict, field: str, where: str, default: float) -> float:
    value = entry.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise TenantsFileError(f"{where}.{field} must be a positive number, got {value!r}")
    return float(value)


def _limit(entry: dict, field: str, where: str, kind: type) -> int | float | None:
    if entry.get(field) is None:
        return None
    value = _number(entry, field, where, 0)
    if kind is int and value != int(value):
        raise TenantsFileError(f"{where}.{field} must be a whole number, got {entry[field]!r}")
    return kind(value)


def _digest(text: object, where: str) -> bytes:
    if isinstance(text, str) and text.startswith(_DIGEST_PREFIX):
        try:
            digest = bytes.fromhex(text[len(_DIGEST_PREFIX):])
        except ValueError:
            digest = b""
        if len(digest) == hashlib.sha256().digest_size:
            return digest
    raise TenantsFileError(f"{where}: expected 'sha256:' and 64 hex digits, got {text!r}")


class TenantDirectory:
    """Finds the tenant of an API key; reloads TENANTS_FILE when it changes."""

    def __init__(self, path: str | None = None, api_key: str | None = None, *, check_every_s: float = 1.0,
                 on_load: Callable[[Sequence[Tenant]], None] | None = None) -> None:
        """``on_load`` is told the tenants each time they are (re)loaded, ``default`` among them."""
        self._path = path
        self._fixed = [(key_digest(api_key), DEFAULT)] if api_key else []
        self._check_every_s = check_every_s
        self._on_load = on_load
        self._lock = threading.Lock()
        self._pairs: list[tuple[bytes, Tenant]] = list(self._fixed)
        self._by_name: dict[str, Tenant] = {DEFAULT_TENANT: DEFAULT}
        self._seen: tuple[int, int, int, int] | None = None
        self._checked_at = -float("inf")
        if path is not None:
            self._load(_signature(path), raise_errors=True)
        else:
            self._announce()

    @property
    def open(self) -> bool:
        """Whether no key is needed: neither TENANTS_FILE nor API_KEY is set."""
        return self._path is None and not self._fixed

    def tenant_for_key(self, key: str | bytes | None) -> Tenant | None:
        """The tenant whose key ``key`` is; None for no key or a wrong one. Every digest is compared."""
        self._maybe_reload()
        if self.open:
            return DEFAULT
        given = key_digest(key or b"")
        found = None
        for digest, tenant in self._pairs:
            if hmac.compare_digest(digest, given) and found is None:
                found = tenant
        return found if key else None

    def tenant_for_authorization(self, header: str | bytes | None) -> Tenant | None:
        """The tenant of an ``Authorization: Bearer <key>`` value (HTTP's header, gRPC's metadata)."""
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        scheme, _, key = (header or "").partition(" ")
        return self.tenant_for_key(key if scheme == "Bearer" and key else None) if not self.open else DEFAULT

    def tenant(self, name: str) -> Tenant:
        """A tenant by name (its limits as now configured); one no longer configured, as ``default``
        would be limited (weight 1, no limits of its own)."""
        self._maybe_reload()
        return self._by_name.get(name) or Tenant(name)

    def tenants(self) -> list[Tenant]:
        self._maybe_reload()
        return sorted(self._by_name.values(), key=lambda tenant: tenant.name)

    def _maybe_reload(self) -> None:
        if self._path is None or time.monotonic() - self._checked_at < self._check_every_s:
            return
        with self._lock:
            if time.monotonic() - self._checked_at < self._check_every_s:
                return
            self._checked_at = time.monotonic()
            try:
                seen = _signature(self._path)
            except OSError as exc:
                log.warning("tenants file %s unreadable, keeping the tenants read before: %s", self._path, exc)
                return
            if seen != self._seen:
                self._load(seen, raise_errors=False)

    def _load(self, seen: tuple[int, int, int, int], *, raise_errors: bool) -> None:
        assert self._path is not None
        try:
            with open(self._path, encoding="utf-8") as file:
                pairs = parse_tenants(file.read())
        except (OSError, TenantsFileError) as exc:
            if raise_errors:
                raise TenantsFileError(f"TENANTS_FILE {self._path}: {exc}") from None
            log.warning("tenants file %s not reloaded, keeping the tenants read before: %s", self._path, exc)
            self._seen = seen  # tried once: tried again when it changes
            return
        by_name = {DEFAULT_TENANT: DEFAULT, **{tenant.name: tenant for _, tenant in pairs}}
        self._pairs, self._by_name, self._seen = [*self._fixed, *pairs], by_name, seen
        self._checked_at = time.monotonic()
        log.info("tenants file %s loaded: %d tenants", self._path, len(by_name))
        self._announce()

    def _announce(self) -> None:
        if self._on_load is not None:
            try:
                self._on_load(sorted(self._by_name.values(), key=lambda tenant: tenant.name))
            except Exception as exc:  # noqa: BLE001 (announced again at the next reload; the claim defaults weights)
                log.warning("could not publish the tenants' weights: %s", exc)


def _signature(path: str) -> tuple[int, int, int, int]:
    """What tells a tenants file changed: of the file ``path`` leads to, symlinks followed (a
    Secret volume's file is a link through ``..data`` to a directory kubelet replaces whole)."""
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_dev, stat.st_ino, stat.st_size


def main(argv: Sequence[str]) -> int:
    """``python -m inferq.tenants hash KEY``: the line to put in a tenant's ``keys``."""
    if len(argv) != 2 or argv[0] != "hash":
        print("usage: python -m inferq.tenants hash KEY", file=sys.stderr)
        return 2
    print(_DIGEST_PREFIX + key_digest(argv[1]).hex())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
