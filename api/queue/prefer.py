"""The ``Prefer`` request header (RFC 7240), as far as inferq applies it: ``respond-async`` and ``wait``.

``Prefer: respond-async, wait=10`` asks a route that waits for its answer to give it if it is ready
within 10 s, else to answer ``202 Accepted`` with where to find the job (``api.queue.hand_back``).
Preferences are hints (RFC 7240, section 2): a malformed one, an unknown one or a value out of range
is ignored, never refused, and a request without ``respond-async`` is answered as if it had no
header.

The grammar (section 2): ``Prefer = 1#preference``, ``preference = token [ BWS "=" BWS word ]
*( OWS ";" [ OWS parameter ] )``, ``word = token / quoted-string``, with ``wait = delta-seconds``
(section 4.3). Several ``Prefer`` headers are one list; names are case-insensitive; where a
preference comes twice only the first counts; an empty value is no value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
#: A preference without its parameters: a name, perhaps a value. No two parts of it can match the
#: same characters, so a malformed header costs no backtracking.
_PREFERENCE = re.compile(rf"[ \t]*({_TOKEN})[ \t]*(?:=[ \t]*({_TOKEN}|{_QUOTED})?[ \t]*)?")
#: A list element, or its first part (up to a ";"): up to a separator outside quoted strings.
_ELEMENT = re.compile(rf'(?:{_QUOTED}|[^,"])*')
_FIRST_PART = re.compile(rf'(?:{_QUOTED}|[^;"])*')

RESPOND_ASYNC = "respond-async"
WAIT = "wait"


@dataclasses.dataclass(frozen=True)
class Preferences:
    #: The client would rather be handed a job than wait for the answer.
    respond_async: bool = False
    #: Seconds the client would wait for the answer (``wait``); None where it said none.
    wait_s: int | None = None


def parse(headers: Iterable[str]) -> dict[str, str]:
    """Each preference of the ``Prefer`` header values ``headers``, by lower-case name, to its value
    (unquoted; ``""`` for none), the first of each name; malformed elements are skipped."""
    found: dict[str, str] = {}
    for header in headers:
        for element in _ELEMENT.findall(header):
            first = _FIRST_PART.match(element)
            match = _PREFERENCE.fullmatch(first.group()) if first else None
            if match is None:
                continue
            name, value = match.group(1).lower(), match.group(2) or ""
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            found.setdefault(name, value)
    return found


def preferences(headers: Iterable[str]) -> Preferences:
    """What inferq reads of the ``Prefer`` headers: ``respond-async`` and ``wait``."""
    found = parse(headers)
    wait = found.get(WAIT, "")
    return Preferences(respond_async=RESPOND_ASYNC in found,
                       wait_s=int(wait) if wait.isascii() and wait.isdigit() else None)


def hand_back_after_s(headers: Iterable[str], max_wait_s: float) -> int | float | None:
    """Seconds to wait for the answer before handing back a job, where the request prefers
    ``respond-async`` (its ``wait``, at most ``max_wait_s``; without one, 0: at once); None where
    it does not."""
    prefs = preferences(headers)
    if not prefs.respond_async:
        return None
    return 0 if prefs.wait_s is None else min(prefs.wait_s, max_wait_s)


def applied(wait_s: float | None) -> str:
    """The ``Preference-Applied`` value of a job handed back after waiting ``wait_s``."""
    return RESPOND_ASYNC if not wait_s else f"{RESPOND_ASYNC}, {WAIT}={wait_s:g}"
