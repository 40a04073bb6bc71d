"""CPU-heavy work (decoding uploaded images) run where it cannot freeze the API process.

Under gunicorn's gevent worker (API_WORKER_CLASS=gevent, the default) every request of a process
is a greenlet on one thread, and a greenlet is never preempted: a request decoding large images
would hold every other request of the process, and the reply listener that wakes them, until it
was done. There the work goes to a pool of native threads (gevent's ``ThreadPool``, public API) and
the greenlet that asked waits on it while the hub runs the others: Pillow releases the GIL while
it decodes and resizes, and where NumPy holds it Python's switch interval hands it back to the hub.

Under gthread and granian each request is a thread already, and the work runs on the caller's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Native threads a gevent process decodes on. Two: a request decodes one chunk at a time, so one
#: large upload holds at most one of them and the other is free for everyone else's, and each
#: decode of an image at the pixel limit holds a few hundred MiB while it runs.
THREADS = 2

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
