"""What one request has learned about itself, read by the middleware to log it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from store.keys import KeyRecord


@dataclass(slots=True)
class RequestContext:
    method: str
    endpoint: str
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
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
