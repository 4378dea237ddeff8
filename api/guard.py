"""The first two checks of every authenticated request: the key, then its rate limit."""

from __future__ import annotations

from starlette.requests import Request

from store.keys import KeyRecord

from .context import RequestContext
from .errors import ApiError
from .runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def context_of(request: Request) -> RequestContext:
    return request.scope["state"]["ctx"]


async def admit(request: Request) -> KeyRecord:
    """Authenticate the bearer key and count the request against its per-minute limit."""
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
    verdict = await runtime.limiter.hit(record.key_id, record.rate_limit_per_minute)
    ctx.rate_limit, ctx.rate_remaining, ctx.rate_reset_s = verdict.limit, verdict.remaining, verdict.reset_s
    if not verdict.allowed:
        raise ApiError("rate_limit_exceeded", headers={"Retry-After": str(max(1, verdict.reset_s))})
    return record
