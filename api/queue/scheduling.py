"""How urgent a request is and how long its answer is worth having: its priority and deadline.

Every route that queues work takes them, with its own default priority: ``priority``
(``interactive`` or ``bulk``, or Triton's levels 1 and 2) and ``timeout_ms``, as form fields of an
upload or query parameters; the KServe route also reads Triton's ``parameters.priority`` and
``parameters.timeout`` (in microseconds, as Triton counts it), and the gRPC front end the same
parameters and the call's deadline (``chosen``).
"""

from __future__ import annotations

import dataclasses
import math

from flask import Request, g

from api.errors import ApiError
from api.queue import prefer
from api.runtime import runtime
from inferq import priorities
from inferq.tenants import DEFAULT_TENANT


@dataclasses.dataclass(frozen=True)
class Scheduling:
    priority: str
    #: Seconds past which the job is not worth running, if the client said.
    timeout_s: float | None
    #: Seconds a waited-on job is waited for before it is handed back to be polled, where the request
    #: prefers that (HTTP's ``Prefer: respond-async``, ``api.queue.prefer``); None: waited for to the end.
    hand_back_after_s: float | None = None
    #: Whose work it is (``inferq.tenants``): its share and limits.
    tenant: str = DEFAULT_TENANT


def from_request(request: Request, default: str, *, priority: object = None,
                 timeout_s: float | None = None) -> Scheduling:
    """The request's scheduling: ``priority`` and ``timeout_s`` where the protocol's body gave them,
    else its form fields or query parameters, else ``default`` and no timeout."""
    if priority is None:
        priority = _field(request, "priority")
    if timeout_s is None:
        raw = _field(request, "timeout_ms")
        timeout_s = None if raw is None else _positive(raw, "timeout_ms") / 1000
    hand_back_after_s = prefer.hand_back_after_s(request.headers.getlist("Prefer"),
                                                 runtime().settings.prefer_wait_max_s)
    tenant = g.get("tenant")
    return chosen(default, priority=priority, timeout_s=timeout_s, hand_back_after_s=hand_back_after_s,
                  tenant=tenant.name if tenant is not None else DEFAULT_TENANT)


def chosen(default: str, *, priority: object = None, timeout_s: float | None = None,
           hand_back_after_s: float | None = None, tenant: str = DEFAULT_TENANT) -> Scheduling:
    """A request's scheduling, whatever carried it: its ``priority`` (a name, a Triton level, or
    None for ``default``), ``timeout_s`` (None: none), ``hand_back_after_s`` (None: never) and
    whose work it is."""
    try:
        parsed = priorities.parse(priority)
    except priorities.PriorityError as error:
        raise ApiError(400, str(error)) from None
    return Scheduling(parsed or default, timeout_s, hand_back_after_s, tenant)


def triton_timeout_s(value: object) -> float | None:
    """Triton's ``timeout`` parameter, in microseconds; 0 or absent: none."""
    if value is None or value == 0:
        return None
    return _positive(value, "parameters.timeout") / 1_000_000


def _field(request: Request, name: str) -> str | None:
    value = request.form.get(name) if request.mimetype == "multipart/form-data" else None
    return value if value is not None else request.args.get(name)


def _positive(raw: object, name: str) -> float:
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ApiError(400, f"{name} must be a positive number, got {raw!r}")
    return value
