"""What a route needs, declared (as in full-stack-fastapi-template's `api/deps.py`).

    RuntimeDep    the process's Runtime
    ContextDep    this request's RequestContext (what its log row will say)
    ReaderKey     the bearer key (or `x-api-key`), for reads: the rate-limit window is
                  reported, not used up
    CallerKey     the key of a model call: authenticated, then one hit of its limit
    ChatBody, ImageBody
                  the JSON body read with the MAX_BODY_BYTES limit, validated (api.schemas)

Every dependency is `async def`: FastAPI runs a plain `def` dependency in a worker thread,
a thread hop per request for nothing. FastAPI resolves a route's dependencies in the order of its parameters, so a route
that declares `key: CallerKey, body: ChatBody` checks the key, then the limit, then the
body: the spec's order.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from store.keys import KeyRecord

from .body import read_json_object
from .context import RequestContext
from .errors import ApiError
from .ratelimit import Verdict
from .runtime import Runtime
from .schemas import ChatCompletionRequest, ImageGenerationRequest, parse


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_context(request: Request) -> RequestContext:
    return request.scope["state"]["ctx"]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ContextDep = Annotated[RequestContext, Depends(get_context)]


def presented_key(request: Request) -> str:
    """The key from `Authorization: Bearer …`, or from `x-api-key` (Anthropic's SDK)."""
    scheme, _, raw = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and raw.strip():
        return raw.strip()
    header = request.headers.get("x-api-key", "").strip()
    if header:
        return header
    raise ApiError("invalid_api_key", "Missing bearer API key")


async def _verified_key(request: Request, runtime: Runtime, ctx: RequestContext) -> KeyRecord:
    record = await runtime.verify_key(presented_key(request))
    if record is None:
        raise ApiError("invalid_api_key")
    ctx.key = record
    if not record.usable:
        raise ApiError("api_disabled")
    return record


def _report(ctx: RequestContext, verdict: Verdict) -> None:
    ctx.rate_limit, ctx.rate_remaining, ctx.rate_reset_s = verdict.limit, verdict.remaining, verdict.reset_s


async def reader_key(request: Request, runtime: RuntimeDep, ctx: ContextDep) -> KeyRecord:
    """Authenticate the key; report its rate-limit window without counting (reads)."""
    record = await _verified_key(request, runtime, ctx)
    _report(ctx, await runtime.limiter.peek(record.key_id, record.rate_limit_per_minute))
    return record


async def caller_key(request: Request, runtime: RuntimeDep, ctx: ContextDep) -> KeyRecord:
    """Authenticate the key and count this model call against its per-minute limit."""
    record = await _verified_key(request, runtime, ctx)
    verdict = await runtime.limiter.hit(record.key_id, record.rate_limit_per_minute)
    _report(ctx, verdict)
    if not verdict.allowed:
        raise ApiError("rate_limit_exceeded", headers={"Retry-After": str(max(1, verdict.reset_s))})
    return record


ReaderKey = Annotated[KeyRecord, Depends(reader_key)]
CallerKey = Annotated[KeyRecord, Depends(caller_key)]


async def chat_body(request: Request, runtime: RuntimeDep) -> ChatCompletionRequest:
    return parse(ChatCompletionRequest, await read_json_object(request, runtime.settings.max_body_bytes))


async def image_body(request: Request, runtime: RuntimeDep) -> ImageGenerationRequest:
    return parse(ImageGenerationRequest, await read_json_object(request, runtime.settings.max_body_bytes))


ChatBody = Annotated[ChatCompletionRequest, Depends(chat_body)]
ImageBody = Annotated[ImageGenerationRequest, Depends(image_body)]
