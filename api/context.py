"""What one request has learned about itself, read by the middleware to log it."""

from __future__ import annotations

import itertools
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from store.keys import KeyRecord


class _RequestIds:
    """Request ids unique across processes and hosts: 64 random bits drawn once per process
    (again in a forked child) and a counter, as 32 hex characters like a UUID's. Cheaper
    than a uuid4 a request, which reads the system's randomness and builds an object."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._count = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count):016x}"


new_request_id = _RequestIds()


@dataclass(slots=True)
class RequestContext:
    method: str
    endpoint: str
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    key: KeyRecord | None = None
    model: str | None = None
    credit_cost: int = 0  # micro-credits, net: what stays charged after any settlement or refund
    held: int = 0  # micro-credits reserved at admission
    upstream_cost: int | None = None  # the upstream's reported USD cost, micro-USD
    unsettled: tuple[str, int] | None = None  # (model, estimate): no usage came, the reconciler settles
    finished: bool = False  # billing.finish ran
    release_hold: bool = False  # the money is final: the log row closes the hold's record
    in_flight_user: int | None = None  # counted in Runtime.inflight until the response ends
    body_bytes: int = 0  # the size of the request body read
    stream: bool = False
    usage: dict[str, Any] | None = None
    upstream_id: str | None = None
    task_id: str | None = None
    error_code: str | None = None
    status: int = 0
    route: str | None = None  # the route template that answered (metrics label), None if none did
    client: str | None = None  # the caller's address, for the access log
    unhandled: BaseException | None = None  # an exception already answered as internal_error
    # rate-limit headers: limit, remaining, seconds until reset (0/0/0 when no limit applies)
    rate_limit: int = 0
    rate_remaining: int = 0
    rate_reset_s: int = 0
