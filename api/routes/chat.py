"""POST /api/v1/chat/completions: checked in the spec's order, charged once, relayed."""

from __future__ import annotations

from typing import Any, AsyncIterator

import anyio
import orjson
from fastapi import APIRouter
from starlette.responses import Response

from store.models import ModelEntry
from store.pricing import prompt_token_bound

from .. import billing
from ..chat_policy import UpstreamChat, upstream_chat
from ..context import RequestContext
from ..deps import CallerKey, ChatBody, ContextDep, RuntimeDep
from ..errors import ERRORS, ApiError, error_body
from ..providers import UpstreamError, clean_message
from ..providers.openrouter import UpstreamStream, relay_events
from ..runtime import Runtime
from ..schemas import ChatCompletionRequest, request_body
from ..streaming import RelayResponse

router = APIRouter()


@router.post(
    "/chat/completions",
    summary="Create a chat completion (OpenAI-compatible; `stream: true` for server-sent events)",
    openapi_extra=request_body(ChatCompletionRequest),
    responses=ERRORS,
)
async def chat_completions(key: CallerKey, request: ChatBody, runtime: RuntimeDep, ctx: ContextDep) -> Response:
    """Checked in the spec's order (key, limit, body, model, provider, credits), charged once, relayed."""
    body = request.model_dump(exclude_unset=True)
    model_id, stream = body["model"], bool(body.get("stream"))
    ctx.model, ctx.stream = model_id, stream
    entry = await runtime.model_for(model_id, "chat")
    chat = runtime.chat
    if entry.provider != "openrouter" or chat is None or not chat.configured:
        raise ApiError("provider_not_configured")
    plan = upstream_chat(body, upstream_id=entry.upstream_id, max_output_tokens=entry.max_output_tokens)
    content = _serialise(plan.body)  # before the debit: nothing after it may fail on the caller's input
    await billing.hold(runtime, ctx, entry, prompt_bound=prompt_token_bound(content), max_tokens=plan.max_tokens,
                       n=plan.n)
    try:
        if not stream:
            data = await chat.complete(content)
            data["model"] = model_id
            ctx.upstream_id = data.get("id")
            billing.bill(runtime, ctx, entry, data.get("usage"), n=plan.n, prompt_bytes=len(content),
                         completion_bytes=_choices_bytes(data.get("choices")))
            answer = Response(orjson.dumps(data), media_type="application/json")
            billing.finish(runtime, ctx)
            return answer
        upstream = await chat.open_stream(content)
    except UpstreamError as exc:
        await runtime.refund(ctx, str(exc))
        raise exc.as_api_error() from None
    except BaseException as exc:  # a platform fault (or the caller gone) after the debit
        await runtime.refund(ctx, f"platform error: {type(exc).__name__}")
        raise
    relay = Relay(upstream, runtime, ctx, entry, model_id, plan, len(content))
    return RelayResponse(
        _relay(relay),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        on_close=relay.close,
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


def _choices_bytes(choices: Any) -> int:
    """How much text a completion's choices carry (the estimate when usage is missing)."""
    return len(orjson.dumps(choices)) if isinstance(choices, list) else 0


def _delta_bytes(data: dict[str, Any]) -> int:
    """How much generated text one stream chunk carries."""
    size = 0
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            for name in ("content", "reasoning", "refusal"):
                if isinstance(delta.get(name), str):
                    size += len(delta[name])
            if isinstance(delta.get("tool_calls"), list):
                size += len(orjson.dumps(delta["tool_calls"]))
    return size


class Relay:
    """What the relay of one stream knows and has billed."""

    __slots__ = ("upstream", "runtime", "ctx", "entry", "model_id", "plan", "prompt_bytes", "relayed_bytes",
                 "settled", "closed")

    def __init__(self, upstream: UpstreamStream, runtime: Runtime, ctx: RequestContext, entry: ModelEntry,
                 model_id: str, plan: UpstreamChat, prompt_bytes: int) -> None:
        self.upstream = upstream
        self.runtime, self.ctx, self.entry, self.model_id, self.plan = runtime, ctx, entry, model_id, plan
        self.prompt_bytes = prompt_bytes
        self.relayed_bytes = 0
        self.settled = False  # billed from usage, or refunded
        self.closed = False

    def bill(self, usage: Any) -> None:
        self.settled = True
        billing.bill(self.runtime, self.ctx, self.entry, usage, n=self.plan.n, prompt_bytes=self.prompt_bytes,
                     completion_bytes=self.relayed_bytes)

    async def close(self) -> None:
        """Once, however the stream ended (even if it never started): a request that was
        neither billed from usage nor refunded is billed without it; the upstream call ends."""
        if self.closed:
            return
        self.closed = True
        if not self.settled:
            self.bill(None)
        billing.finish(self.runtime, self.ctx)  # nothing when the request was refunded
        with anyio.CancelScope(shield=True):  # runs while being cancelled by a disconnect
            await self.upstream.aclose()


async def _relay(relay: Relay) -> AsyncIterator[bytes]:
    """Pass each event on as it arrives, with the public model id.

    The charge stands once the upstream has answered, even if the client leaves (then
    for what the upstream produced: its usage, else the reconciler's settlement). The
    generation counts as delivered only if the stream ends with `[DONE]` or a
    `finish_reason`; an error event, a choice finished with "error", a break-off, or a
    fault of ours ends it with an error event and the credits come back, once. The usage
    chunk the platform asked for reaches only a caller who asked for it too.
    """
    ctx, runtime = relay.ctx, relay.runtime
    done = finished = False
    try:
        try:
            async for lines, data in relay_events(relay.upstream):
                if data is None:
                    done = done or (len(lines) == 1 and lines[0].replace(b" ", b"") == b"data:[DONE]")
                    yield b"\n".join(lines) + b"\n\n"
                    continue
                failure = _stream_failure(data)
                if failure is not None:
                    raise UpstreamError(f"Upstream provider reported an error mid-stream: {failure}")
                finished = finished or _finished(data)
                relay.relayed_bytes += _delta_bytes(data)
                if "model" in data:
                    data["model"] = relay.model_id
                if ctx.upstream_id is None and data.get("id"):
                    ctx.upstream_id = data["id"]
                if isinstance(data.get("usage"), dict):
                    relay.bill(data["usage"])
                    if not relay.plan.client_wants_usage:
                        if not data.get("choices"):
                            continue  # the usage chunk the caller did not ask for
                        del data["usage"]
                yield b"data: " + orjson.dumps(data) + b"\n\n"
            if not (done or finished):
                raise UpstreamError("Upstream stream ended without finishing")
            if not done:
                yield b"data: [DONE]\n\n"
        except Exception as exc:  # an upstream failure or a fault of ours, never the client leaving
            relay.settled = True
            message = str(exc) if isinstance(exc, UpstreamError) else "Internal error while relaying the stream"
            ctx.error_code = "provider_error" if isinstance(exc, UpstreamError) else "internal_error"
            with anyio.CancelScope(shield=True):
                await runtime.refund(ctx, message)
            yield b"data: " + error_body(ctx.error_code, message) + b"\n\n"
    finally:
        await relay.close()
