"""Tasks run a few at a time, their results handed back in the order the tasks came.

Daemon threads rather than a ThreadPoolExecutor: when the caller stops (Ctrl-C, an error), a thread
still waiting on the network must not hold the process open at exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: How long a stopped pipeline lets tasks in flight finish (a request on the wire, say) before it
#: leaves them behind.
SETTLE_S = 2.0


def ordered(tasks: Iterable[Callable[[], T]], concurrency: int, window: int | None = None) -> Iterator[T]:
    """Each task's result in task order, ``concurrency`` tasks running at once.

    At most ``window`` (twice ``concurrency`` by default) tasks are started and not yet handed back,
    so a slow task holds back a bounded number of finished ones. A task's exception is raised in
    its turn; tasks not yet started then never start.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    window = max(window or 2 * concurrency, concurrency)
    work: queue.Queue = queue.Queue()
    finished: dict[int, tuple[bool, object]] = {}
    ready = threading.Condition()

    def run() -> None:
        while (item := work.get()) is not None:
            index, task = item
            try:
                outcome: tuple[bool, object] = (True, task())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, in order
                outcome = (False, exc)
            with ready:
                finished[index] = outcome
                ready.notify_all()

    threads = [threading.Thread(target=run, daemon=True, name=f"inferq-client-{i}") for i in range(concurrency)]
    for thread in threads:
        thread.start()
    pending = iter(tasks)
    started = handed = 0
    exhausted = False
    try:
        while True:
            while not exhausted and started - handed < window:
                task = next(pending, None)
                if task is None:
                    exhausted = True
                    break
                work.put((started, task))
                started += 1
            if handed == started:
                return
            with ready:
                # A timed wait, so that Ctrl-C reaches this thread promptly.
                while handed not in finished:
                    ready.wait(0.5)
                ok, value = finished.pop(handed)
            handed += 1
            if not ok:
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        while True:
            try:
                work.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            work.put(None)
        deadline = time.monotonic() + SETTLE_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
