"""The one way a chat-shaped request runs, whatever format the caller speaks.

    admit     a call's body made ready to send (api.prepare: validated, translated, the
              model found, the request policy applied, bounded), its provider, then the
              hold (402 before any upstream call)
    complete  one answer from the upstream, billed, rendered by the endpoint, finished;
              refunded on any failure
    stream    the upstream's events relayed as they arrive through the endpoint's
              `EventFormat`, billed from the usage chunk; a failure mid-way is refunded once

`/chat/completions` renders the upstream's own format; `/responses` and `/messages`
translate (api/translate/). Every one of them bills through api/billing.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import orjson
from starlette.responses import Response

from store.models import ModelEntry

from . import billing
from .context import RequestContext
from .deps import ModelCall
from .errors import ApiError
from .prepare import CATEGORY, Prepared, prepare
from .providers import UpstreamError, clean_message
from .providers.openrouter import OpenRouterChat, UpstreamStream, relay_events
from .runtime import Runtime
from .streaming import RelayResponse

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@dataclass(frozen=True, slots=True)
class ChatCall:
    """An admitted request: held, not yet sent."""

    runtime: Runtime
    ctx: RequestContext
    chat: OpenRouterChat
    entry: ModelEntry
    prepared: Prepared

    @property
    def model_id(self) -> str:  # the public id the caller named
        return self.prepared.model_id

    @property
    def content(self) -> bytes:  # the serialised upstream body
        return self.prepared.content

    @property
    def stream(self) -> bool:
        return self.prepared.stream


class EventFormat(Protocol):
    """How one endpoint writes a relayed stream. Each method returns the bytes to send
    (b"" or None for nothing); `chunk` gets every upstream JSON event, already checked for
    failure and billed from its usage (so `usage["cost"]` is the charge)."""

    def start(self) -> bytes: ...
    def chunk(self, data: dict[str, Any]) -> bytes | None: ...
    def other(self, lines: list[bytes]) -> bytes | None: ...  # a non-JSON event: `[DONE]`, a comment
    def end(self, done: bool) -> bytes: ...  # a delivered stream; `done`: the upstream sent `[DONE]`
    def error(self, code: str, message: str) -> bytes: ...


async def admit(call: ModelCall, endpoint: str) -> ChatCall:
    """Body → model → provider → credits, in the spec's order, for the body of a call to
    `endpoint` (api.prepare: inline, or in a worker process for a big body)."""
    runtime, ctx, raw = call.runtime, call.ctx, call.raw
    prepared = await runtime.offload(ctx, prepare, endpoint, raw, await runtime.entry_views(), runtime.native_formats)
    ctx.model, ctx.stream = prepared.model_id, prepared.stream
    entry = await runtime.model_for(prepared.model_id, CATEGORY[endpoint], call.key)
    chat = runtime.chat
    if entry.provider != "openrouter" or chat is None or not chat.configured:
        raise ApiError("provider_not_configured")
    await billing.hold(
        runtime,
        ctx,
        entry,
        prompt_bound=prepared.prompt_bound,
        max_tokens=prepared.max_tokens,
        n=prepared.n,
        extra_completion=prepared.extra_completion,
    )
    return ChatCall(runtime, ctx, chat, entry, prepared)


async def complete(call: ChatCall, render: Callable[[dict[str, Any]], bytes]) -> Response:
    """One completion; `render` turns the upstream's body (public model id, usage with the
    charge as `cost`) into the caller's answer."""
    runtime, ctx = call.runtime, call.ctx
    try:
        data = await call.chat.complete(call.content)
        data["model"] = call.model_id
        ctx.upstream_id = data.get("id")
        billing.bill(
            runtime,
            ctx,
            call.entry,
            data.get("usage"),
            n=call.prepared.n,
            prompt_bytes=len(call.content),
            completion_bytes=_choices_bytes(data.get("choices")),
        )
        answer = Response(render(data), media_type="application/json")
        billing.finish(runtime, ctx)
        return answer
    except BaseException as exc:  # an upstream's error, a platform fault or the caller gone after the debit
        await billing.refund(runtime, ctx, exc)


async def stream(call: ChatCall, events: EventFormat) -> Response:
    """Open the upstream stream (refunded if it fails) and relay it through `events`."""
    runtime, ctx = call.runtime, call.ctx
    try:
        upstream = await call.chat.open_stream(call.content)
    except BaseException as exc:
        await billing.refund(runtime, ctx, exc)
    relay = Relay(upstream, call)
    return RelayResponse(
        _relay(relay, events), media_type="text/event-stream", headers=SSE_HEADERS, on_close=relay.close
    )


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
        isinstance(c, dict) and c.get("finish_reason") is not None for c in choices
    )


def _choices_bytes(choices: Any) -> int:
    """How much text a completion's choices carry (the estimate when usage is missing)."""
    return len(orjson.dumps(choices)) if isinstance(choices, list) else 0


def _delta_bytes(data: dict[str, Any]) -> int:
    """How many bytes of generated text one stream chunk carries (the estimate counts bytes,
    not characters: a character may be several tokens' worth)."""
    size = 0
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            for name in ("content", "reasoning", "refusal"):
                if isinstance(delta.get(name), str):
                    size += len(delta[name].encode("utf-8", "surrogatepass"))
            if isinstance(delta.get("tool_calls"), list):
                size += len(orjson.dumps(delta["tool_calls"]))
    return size


class Relay:
    """What the relay of one stream knows and has billed."""

    __slots__ = ("upstream", "call", "relayed_bytes", "settled", "closed")

    def __init__(self, upstream: UpstreamStream, call: ChatCall) -> None:
        self.upstream = upstream
        self.call = call
        self.relayed_bytes = 0
        self.settled = False  # billed from usage, or refunded
        self.closed = False

    def bill(self, usage: Any) -> None:
        self.settled = True
        call = self.call
        billing.bill(
            call.runtime,
            call.ctx,
            call.entry,
            usage,
            n=call.prepared.n,
            prompt_bytes=len(call.content),
            completion_bytes=self.relayed_bytes,
        )

    async def failed(self, exc: Exception) -> tuple[str, str]:
        """The stream failed mid-way (an upstream's failure, or a fault of ours): refund it
        once, even while being cancelled; returns the code and message of its error event."""
        self.settled = True
        ctx = self.call.ctx
        message = str(exc) if isinstance(exc, UpstreamError) else "Internal error while relaying the stream"
        ctx.error_code = "provider_error" if isinstance(exc, UpstreamError) else "internal_error"
        with anyio.CancelScope(shield=True):
            await self.call.runtime.refund(ctx, message)
        return ctx.error_code, message

    async def close(self) -> None:
        """Once, however the stream ended (even if it never started): a request that was
        neither billed from usage nor refunded is billed without it; the upstream call ends."""
        if self.closed:
            return
        self.closed = True
        if not self.settled:
            self.bill(None)
        billing.finish(self.call.runtime, self.call.ctx)  # nothing when the request was refunded
        with anyio.CancelScope(shield=True):  # runs while being cancelled by a disconnect
            await self.upstream.aclose()


async def _relay(relay: Relay, events: EventFormat) -> AsyncIterator[bytes]:
    """Pass each event on as it arrives, written by `events`.

    The charge stands once the upstream has answered, even if the client leaves (then
    for what the upstream produced: its usage, else the reconciler's settlement). The
    generation counts as delivered only if the stream ends with `[DONE]` or a
    `finish_reason`; an error event, a choice finished with "error", a break-off, or a
    fault of ours ends it with the format's error event and the credits come back, once.
    """
    ctx, runtime = relay.call.ctx, relay.call.runtime
    done = finished = False
    try:
        try:
            head = events.start()
            if head:
                yield head
            async for lines, data in relay_events(relay.upstream):
                if data is None:
                    done = done or (len(lines) == 1 and lines[0].replace(b" ", b"") == b"data:[DONE]")
                    out = events.other(lines)
                    if out:
                        yield out
                    continue
                failure = _stream_failure(data)
                if failure is not None:
                    raise UpstreamError(f"Upstream provider reported an error mid-stream: {failure}")
                finished = finished or _finished(data)
                relay.relayed_bytes += _delta_bytes(data)
                if ctx.upstream_id is None and data.get("id"):
                    ctx.upstream_id = data["id"]
                    runtime.holds.note(ctx.request_id, str(data["id"]))
                if isinstance(data.get("usage"), dict):
                    relay.bill(data["usage"])
                out = events.chunk(data)
                if out:
                    yield out
            if not (done or finished):
                raise UpstreamError("Upstream stream ended without finishing")
            tail = events.end(done)
            if tail:
                yield tail
        except Exception as exc:  # an upstream failure or a fault of ours, never the client leaving
            yield events.error(*await relay.failed(exc))
    finally:
        await relay.close()
