"""What a route needs, declared (as in full-stack-fastapi-template's `api/deps.py`).

    RuntimeDep    the process's Runtime
    ContextDep    this request's RequestContext (what its log row will say)
    ReaderKey     the bearer key (or `x-api-key`), for reads: the rate-limit window is
                  reported, not used up
    CallerKey     the key of a model call: authenticated, then one hit of its limit
    ChatModelCall, EmbeddingModelCall, FreeModelRead
                  a model call's key (counted, or read's), then its body, read with the
                  MAX_BODY_BYTES limit and the BODY_READ_TIMEOUT_S deadline (prepared by
                  api.prepare, off the event loop when big), in one dependency
    ImageBody     the body validated as an image request (api.schemas)

Every dependency is `async def`: FastAPI runs a plain `def` dependency in a worker thread,
a thread hop per request for nothing. FastAPI resolves a route's dependencies in the order of its parameters, so a route
that declares `key: CallerKey, body: ImageBody` checks the key, then the limit, then reads
the body: the spec's order (a ModelCall does the same in one dependency).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel

from store.keys import KeyRecord

from .body import BIG_BODY_BYTES, decode_object, read_body
from .context import RequestContext
from .errors import ApiError
from .ratelimit import Verdict
from .runtime import Runtime
from .schemas import ImageGenerationRequest, parse

M = TypeVar("M", bound=BaseModel)


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


async def _reader(request: Request, runtime: Runtime, ctx: RequestContext) -> KeyRecord:
    record = await _verified_key(request, runtime, ctx)
    _report(ctx, await runtime.limiter.peek(record.key_id, record.rate_limit_per_minute))
    return record


async def _caller(request: Request, runtime: Runtime, ctx: RequestContext) -> KeyRecord:
    record = await _verified_key(request, runtime, ctx)
    verdict = await runtime.limiter.hit(record.key_id, record.rate_limit_per_minute)
    _report(ctx, verdict)
    if not verdict.allowed:
        raise ApiError("rate_limit_exceeded", headers={"Retry-After": str(max(1, verdict.reset_s))})
    runtime.inflight.enter(record.user_id)
    ctx.in_flight_user = record.user_id
    return record


async def reader_key(request: Request, runtime: RuntimeDep, ctx: ContextDep) -> KeyRecord:
    """Authenticate the key; report its rate-limit window without counting (reads)."""
    return await _reader(request, runtime, ctx)


async def caller_key(request: Request, runtime: RuntimeDep, ctx: ContextDep) -> KeyRecord:
    """Authenticate the key, count this model call against its per-minute limit and its
    user's calls in flight (MAX_IN_FLIGHT_PER_USER, until the response ends)."""
    return await _caller(request, runtime, ctx)


ReaderKey = Annotated[KeyRecord, Depends(reader_key)]
CallerKey = Annotated[KeyRecord, Depends(caller_key)]


async def _read(request: Request, runtime: Runtime, ctx: RequestContext, category: str | None) -> bytes:
    """The body (api.body: the size limit, the deadline); a big one from a key that cannot
    pay the smallest hold of a `category` model is refused (402) before it is parsed (None:
    a free read)."""
    settings = runtime.settings
    raw = await read_body(request, max_bytes=settings.max_body_bytes, timeout_s=settings.body_read_timeout_s)
    ctx.body_bytes = len(raw)
    if category is not None and len(raw) >= BIG_BODY_BYTES:
        await runtime.refuse_unaffordable(ctx, category)
    return raw


def raw_body(category: str | None) -> Callable[..., Awaitable[bytes]]:
    """The body alone as a dependency (`_read`)."""

    async def dependency(request: Request, runtime: RuntimeDep, ctx: ContextDep) -> bytes:
        return await _read(request, runtime, ctx, category)

    return dependency


@dataclass(frozen=True, slots=True)
class ModelCall:
    """What a model call's route gets, checked in the spec's order: the key, its rate limit
    and its user's calls in flight (a read: its window only), then the body. One dependency
    rather than four: FastAPI's resolution costs per dependency, on every request."""

    runtime: Runtime
    ctx: RequestContext
    key: KeyRecord
    raw: bytes
    request: Request


def model_call(category: str | None) -> Callable[..., Awaitable[ModelCall]]:
    """A model call of `category` (None: a free read, such as `count_tokens`)."""

    async def dependency(request: Request) -> ModelCall:
        runtime: Runtime = request.app.state.runtime
        ctx: RequestContext = request.scope["state"]["ctx"]
        key = await (_caller if category is not None else _reader)(request, runtime, ctx)
        return ModelCall(runtime, ctx, key, await _read(request, runtime, ctx, category), request)

    return dependency


ChatModelCall = Annotated[ModelCall, Depends(model_call("chat"))]
EmbeddingModelCall = Annotated[ModelCall, Depends(model_call("embedding"))]
FreeModelRead = Annotated[ModelCall, Depends(model_call(None))]


def parse_raw(model: type[M], raw: bytes) -> M:
    return parse(model, decode_object(raw))


async def image_body(raw: Annotated[bytes, Depends(raw_body("image"))], runtime: RuntimeDep, ctx: ContextDep):
    return await runtime.offload(ctx, parse_raw, ImageGenerationRequest, raw)


ImageBody = Annotated[ImageGenerationRequest, Depends(image_body)]
