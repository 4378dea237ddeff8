"""POST /api/v1/chat/completions: checked in the spec's order, charged once, relayed."""

from __future__ import annotations

from typing import Any, AsyncIterator

import httpx
import orjson
from fastapi import APIRouter, Request
import anyio
from starlette.responses import Response

from ..body import check_types, read_json_object, require_model
from ..context import RequestContext
from ..errors import ApiError, error_body
from ..guard import admit, context_of, runtime_of
from ..providers import UpstreamError
from ..providers.openrouter import relay_events
from ..runtime import Runtime
from ..streaming import RelayResponse
from .docs import CHAT_REQUEST, ERRORS

router = APIRouter()

_NUMERIC = (int, float)
_FIELD_RULES = {
    "stream": (bool, None, None),
    "temperature": (_NUMERIC, 0, 2),
    "top_p": (_NUMERIC, 0, 1),
    "max_tokens": (int, 1, 2**31 - 1),
    "max_completion_tokens": (int, 1, 2**31 - 1),
    "n": (int, 1, 128),
    "presence_penalty": (_NUMERIC, -2, 2),
    "frequency_penalty": (_NUMERIC, -2, 2),
    "stream_options": (dict, None, None),
    "tools": (list, None, None),
    "stop": ((str, list), None, None),
}


def _validate(body: dict[str, Any]) -> tuple[str, bool]:
    model = require_model(body)
    messages = body.get("messages")
    if messages is None or messages == []:
        raise ApiError("messages_required")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ApiError("invalid_request", "`messages` must be a list of message objects")
    check_types(body, _FIELD_RULES)
    return model, bool(body.get("stream"))


@router.post(
    "/chat/completions",
    summary="Create a chat completion (OpenAI-compatible; `stream: true` for server-sent events)",
    openapi_extra={"requestBody": CHAT_REQUEST},
    responses=ERRORS,
)
async def chat_completions(request: Request) -> Response:
    runtime, ctx = runtime_of(request), context_of(request)
    await admit(request)
    body = await read_json_object(request, runtime.settings.max_body_bytes)
    model_id, stream = _validate(body)
    ctx.model, ctx.stream = model_id, stream
    entry = await runtime.model_for(model_id, "chat")
    chat = runtime.chat
    if entry.provider != "openrouter" or chat is None or not chat.configured:
        raise ApiError("provider_not_configured")
    await runtime.debit(ctx, cost=entry.credit_cost, model=model_id)
    body["model"] = entry.upstream_id
    if not stream:
        try:
            data = await chat.complete(body)
        except UpstreamError as exc:
            await runtime.refund(ctx, str(exc))
            raise exc.as_api_error() from None
        data["model"] = model_id
        ctx.usage, ctx.upstream_id = data.get("usage"), data.get("id")
        return Response(orjson.dumps(data), media_type="application/json")
    try:
        upstream = await chat.open_stream(body)
    except UpstreamError as exc:
        await runtime.refund(ctx, str(exc))
        raise exc.as_api_error() from None
    return RelayResponse(
        _relay(upstream, model_id, ctx, runtime),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _relay(upstream: httpx.Response, model_id: str, ctx: RequestContext, runtime: Runtime) -> AsyncIterator[bytes]:
    """Pass each event on as it arrives, with the public model id.

    The charge stands once the upstream has answered, even if the client leaves; if the
    upstream breaks off, the client gets an error event and the credits come back.
    """
    done = False
    try:
        async for lines, data in relay_events(upstream):
            if data is None:
                done = done or lines == ["data: [DONE]"]
                yield ("\n".join(lines) + "\n\n").encode()
                continue
            if "model" in data:
                data["model"] = model_id
            if isinstance(data.get("usage"), dict):
                ctx.usage = data["usage"]
            if ctx.upstream_id is None and data.get("id"):
                ctx.upstream_id = data["id"]
            yield b"data: " + orjson.dumps(data) + b"\n\n"
        if not done:
            yield b"data: [DONE]\n\n"
    except UpstreamError as exc:
        ctx.error_code = "provider_error"
        await runtime.refund(ctx, str(exc))
        yield b"data: " + error_body("provider_error", str(exc)) + b"\n\n"
    finally:
        with anyio.CancelScope(shield=True):  # runs while being cancelled by a disconnect
            await upstream.aclose()
