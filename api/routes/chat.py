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
from ..providers import UpstreamError, clean_message
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
    body["model"] = entry.upstream_id
    content = _serialise(body)  # before the debit: nothing after it may fail on the caller's input
    await runtime.debit(ctx, cost=entry.credit_cost, model=model_id)
    try:
        if not stream:
            data = await chat.complete(content)
            data["model"] = model_id
            ctx.usage, ctx.upstream_id = data.get("usage"), data.get("id")
            return Response(orjson.dumps(data), media_type="application/json")
        upstream = await chat.open_stream(content)
    except UpstreamError as exc:
        await runtime.refund(ctx, str(exc))
        raise exc.as_api_error() from None
    except BaseException as exc:  # a platform fault (or the caller gone) after the debit
        await runtime.refund(ctx, f"platform error: {type(exc).__name__}")
        raise
    return RelayResponse(
        _relay(upstream, model_id, ctx, runtime),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def _serialise(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:  # e.g. nested deeper than the encoder allows
        raise ApiError("invalid_request", "Request body cannot be encoded (nested too deeply?)") from None


def _stream_failure(data: dict[str, Any]) -> str | None:
    """Why an upstream event says the generation failed (an `error`, or a choice that
    finished with "error"), or None."""
    error = data.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        return clean_message(message) if isinstance(message, str) and message.strip() else "error event"
    choices = data.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason") == "error":
                return "a choice finished with an error"
    return None


def _finished(data: dict[str, Any]) -> bool:
    choices = data.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") is not None for c in choices)


async def _relay(upstream: httpx.Response, model_id: str, ctx: RequestContext, runtime: Runtime) -> AsyncIterator[bytes]:
    """Pass each event on as it arrives, with the public model id.

    The charge stands once the upstream has answered, even if the client leaves. The
    generation counts as delivered only if the stream ends with `[DONE]` or a
    `finish_reason`; an error event, a choice finished with "error", a break-off, or a
    fault of ours ends it with an error event and the credits come back, once.
    """
    done = finished = False
    try:
        try:
            async for lines, data in relay_events(upstream):
                if data is None:
                    done = done or lines == ["data: [DONE]"]
                    yield ("\n".join(lines) + "\n\n").encode()
                    continue
                failure = _stream_failure(data)
                if failure is not None:
                    raise UpstreamError(f"Upstream provider reported an error mid-stream: {failure}")
                finished = finished or _finished(data)
                if "model" in data:
                    data["model"] = model_id
                if isinstance(data.get("usage"), dict):
                    ctx.usage = data["usage"]
                if ctx.upstream_id is None and data.get("id"):
                    ctx.upstream_id = data["id"]
                yield b"data: " + orjson.dumps(data) + b"\n\n"
            if not (done or finished):
                raise UpstreamError("Upstream stream ended without finishing")
            if not done:
                yield b"data: [DONE]\n\n"
        except Exception as exc:  # an upstream failure or a fault of ours, never the client leaving
            message = str(exc) if isinstance(exc, UpstreamError) else "Internal error while relaying the stream"
            ctx.error_code = "provider_error" if isinstance(exc, UpstreamError) else "internal_error"
            with anyio.CancelScope(shield=True):
                await runtime.refund(ctx, message)
            yield b"data: " + error_body(ctx.error_code, message) + b"\n\n"
    finally:
        with anyio.CancelScope(shield=True):  # runs while being cancelled by a disconnect
            await upstream.aclose()
