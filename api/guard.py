"""The first checks of every authenticated request: the key, then (model calls only)
its rate limit.

`authenticate` is for reads (`/key`, `/models`, task status): they do not use up the
limit, so a limited client can still read its balance; they report the current window
in the headers all the same. `admit` is for model calls: the key, then one hit.
"""

from __future__ import annotations

from starlette.requests import Request

from store.keys import KeyRecord

from .context import RequestContext
from .errors import ApiError
from .ratelimit import Verdict
from .runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def context_of(request: Request) -> RequestContext:
    return request.scope["state"]["ctx"]


async def _verified_key(request: Request) -> KeyRecord:
    runtime, ctx = runtime_of(request), context_of(request)
    scheme, _, raw = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise ApiError("invalid_api_key", "Missing bearer API key")
    record = await runtime.verify_key(raw.strip())
    if record is None:
        raise ApiError("invalid_api_key")
    ctx.key = record
    if not record.usable:
        raise ApiError("api_disabled")
    return record


def _report(ctx: RequestContext, verdict: Verdict) -> None:
    ctx.rate_limit, ctx.rate_remaining, ctx.rate_reset_s = verdict.limit, verdict.remaining, verdict.reset_s


async def authenticate(request: Request) -> KeyRecord:
    """Authenticate the bearer key; report its rate-limit window without counting."""
    record = await _verified_key(request)
    _report(context_of(request), await runtime_of(request).limiter.peek(record.key_id, record.rate_limit_per_minute))
    return record


async def admit(request: Request) -> KeyRecord:
    """For a model call: authenticate the bearer key and count the call against its limit."""
    record = await _verified_key(request)
    verdict = await runtime_of(request).limiter.hit(record.key_id, record.rate_limit_per_minute)
    _report(context_of(request), verdict)
    if not verdict.allowed:
        raise ApiError("rate_limit_exceeded", headers={"Retry-After": str(max(1, verdict.reset_s))})
    return record
