"""CPU-heavy work (decoding uploaded images) run where it cannot freeze the API process.

Under gunicorn's gevent worker (API_WORKER_CLASS=gevent, the default) every request of a process
is a greenlet on one thread, and a greenlet is never preempted: a request decoding large images
would hold every other request of the process, and the reply listener that wakes them, until it
was done. There the work goes to a pool of native threads (gevent's ``ThreadPool``, public API) and
the greenlet that asked waits on it while the hub runs the others: Pillow releases the GIL while
it decodes and resizes, and where NumPy holds it Python's switch interval hands it back to the hub.

Under gthread and granian each request is a thread already, and the work runs on the caller's.

What stays on a request's greenlet (parsing a multipart body of a thousand parts, reading each
image's header, decoding a chunk too small to hand off) gives the hub a turn every
:data:`TURN_S` of work (:class:`Turns`): another request of the process then waits behind one such
slice, not behind the whole upload. Threads need no such turns: the interpreter's switch interval
takes the GIL from a thread that holds it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Native threads a gevent process decodes on. Two: a request decodes one chunk at a time, so one
#: large upload holds at most one of them and the other is free for everyone else's, and each
#: decode of an image at the pixel limit holds a few hundred MiB while it runs.
THREADS = 2

#: The longest a request's own CPU work holds a gevent process's hub before it lets the others run:
#: about one Redis round trip, so that an interactive request accepted beside a bulk upload waits
#: for a slice of it, not the whole.
TURN_S = 0.001

_pool = None


def run(work: Callable[..., T], *args: object) -> T:
    """``work(*args)``, off the event loop when this process runs one; its exceptions are raised here."""
    if not under_gevent():
        return work(*args)
    global _pool
    if _pool is None:
        from gevent.threadpool import ThreadPool

        _pool = ThreadPool(THREADS)
    return _pool.apply(work, args)


def under_gevent() -> bool:
    """Whether this process's threads are greenlets (gunicorn's gevent worker patches them at start)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


class Turns:
    """Call between two steps of long work on a request's own greenlet: under gevent, every
    :data:`TURN_S` of work the greenlet goes to the back of the hub's queue (``gevent.sleep(0)``),
    so that every other runnable greenlet of the process runs first; elsewhere a no-op. Made on the
    request's greenlet, and called on it only: a native thread (``run``'s) has no hub to yield to."""

    def __init__(self) -> None:
        self._yield = _gevent_yield() if under_gevent() else None
        self._due = time.perf_counter() + TURN_S
        #: Turns given so far.
        self.given = 0

    def __call__(self) -> None:
        if self._yield is None or time.perf_counter() < self._due:
            return
        self._yield()
        self.given += 1
        self._due = time.perf_counter() + TURN_S


def _gevent_yield() -> Callable[[], None]:
    import gevent

    return lambda: gevent.sleep(0)
