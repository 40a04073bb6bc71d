"""Priorities: interactive work is taken before bulk work, each in a queue of its own.

A request is ``interactive`` (a person or a program waiting on the answer: the default of the sync
routes) or ``bulk`` (offline scoring: the default of ``POST /jobs``). Each priority has its own
Celery queue and its own limit on queued images, so a bulk backlog neither delays interactive
work behind it nor fills the queue against it. A worker takes interactive work whenever there is
some and bulk work otherwise, except bulk work that has waited past BULK_MAX_WAIT_S, which it takes
first one claim in two (``inferq.broker``), so that neither starves; one batch may hold both.
"""

from __future__ import annotations

INTERACTIVE = "interactive"
BULK = "bulk"
#: In the order a worker takes them.
PRIORITIES = (INTERACTIVE, BULK)

#: Triton's priority levels (its schedule-policy extension): 1 is the highest; 0 means the default.
_LEVELS = {1: INTERACTIVE, 2: BULK}


class PriorityError(ValueError):
    """A priority that is neither a name nor a level of ours."""


def parse(value: object) -> str | None:
    """A priority from a request: its name, or a Triton level; None for "the route's default"."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, str) and value in PRIORITIES:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value in _LEVELS:
        return _LEVELS[value]
    if isinstance(value, str) and value.isdigit():
        return parse(int(value))
    raise PriorityError(f"priority must be one of {', '.join(PRIORITIES)} (or Triton's level 1 or 2), "
                        f"got {value!r}")


def queue(base: str, priority: str) -> str:
    """The Celery queue of ``priority`` work for the queue named ``base``: interactive work keeps the
    base name, so that a worker or tool that knows only it still finds the work people wait on."""
    return base if priority == INTERACTIVE else f"{base}.{priority}"


def queues(base: str) -> list[str]:
    """Every priority's queue for ``base``, in the order a worker takes them."""
    return [queue(base, priority) for priority in PRIORITIES]


def rank(queue_name: str) -> int:
    """Where a queue comes in the order workers take them: interactive ones (the base name) first."""
    return next((index for index, priority in enumerate(PRIORITIES)
                 if index and queue_name.endswith(f".{priority}")), 0)
