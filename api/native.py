"""Messages and Responses calls sent in their own format to a provider that speaks it
(SPEC, "Agents": native when the upstream speaks the format), billed on the one billing path.

    complete   the upstream's answer with the public model id and `usage.cost` (the
               platform's charge) instead of the upstream's own cost fields
    stream     the upstream's events relayed as they arrive: each passes as the upstream
               wrote it, but the few the platform must read (the message or response as
               it starts, the final usage, the end, an error), so thinking signatures,
               tool blocks and `cache_control` reach the caller unchanged; the usage
               event is rewritten with the charge, the start events with the public id

A stream is delivered when it reaches its format's end (`message_stop`;
`response.completed` or `response.incomplete`); an `error` event, `response.failed`, or a
stream cut before its end is refunded once, as a chat stream is, and the caller gets the
format's error event. Usage is normalised once (api/translate/usage.py: Anthropic's
`input_tokens` excludes the cached ones, the Responses API's includes them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from . import billing
from .chat_core import SSE_HEADERS, ChatCall, Relay
from .prepare import MESSAGES
from .providers import UpstreamError, clean_message
from .providers.openrouter import event_data, relay_blocks
from .streaming import RelayResponse
from .translate import error_object, sse
from .translate import usage as usages

# What a caller's Anthropic SDK or Claude Code sends that the upstream must see too.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
# The upstream's own accounting: never shown to a user (usage.cost becomes the charge).
_UPSTREAM_COST_FIELDS = ("cost", "cost_details", "is_byok")


def forwarded_headers(request: Request) -> dict[str, str]:
    return {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}


def _normalised(format_path: str | None) -> Callable[..., dict[str, Any]]:
    return usages.from_anthropic if format_path == f"/{MESSAGES}" else usages.from_responses


def _with_charge(native_usage: Any, chat_usage: dict[str, Any] | None) -> None:
    """The caller's usage shows the platform's charge as `cost`, never the upstream's."""
    if not isinstance(native_usage, dict):
        return
    for name in _UPSTREAM_COST_FIELDS:
        native_usage.pop(name, None)
    if chat_usage is not None and "cost" in chat_usage:
        native_usage["cost"] = chat_usage["cost"]


async def complete(call: ChatCall, headers: dict[str, str]) -> Response:
    """One native answer, billed from its usage; refunded on any failure."""
    runtime, ctx = call.runtime, call.ctx
    try:
        data = await call.chat.complete(call.content, call.prepared.path, headers)
        if data.get("status") == "failed":
            raise UpstreamError("Upstream provider reported a failed response", detail=_message(data.get("error")))
        data["model"] = call.model_id
        ctx.upstream_id = data.get("id")
        native_usage = data.get("usage")
        chat_usage = _normalised(call.prepared.path)(native_usage) if isinstance(native_usage, dict) else None
        output = data.get("content") if call.prepared.path == f"/{MESSAGES}" else data.get("output")
        billing.bill(
            runtime,
            ctx,
            call.entry,
            chat_usage,
            prompt_bytes=len(call.content),
            completion_bytes=len(orjson.dumps(output)) if output is not None else 0,
        )
        _with_charge(native_usage, chat_usage)
        answer = Response(orjson.dumps(data), media_type="application/json")
        billing.finish(runtime, ctx)
        return answer
    except BaseException as exc:  # an upstream's error, a platform fault or the caller gone after the debit
        await billing.refund(runtime, ctx, exc)


async def stream(call: ChatCall, headers: dict[str, str]) -> Response:
    """Open the native upstream stream (refunded if it fails) and relay it."""
    runtime, ctx = call.runtime, call.ctx
    try:
        upstream = await call.chat.open_stream(call.content, call.prepared.path, headers)
    except BaseException as exc:
        await billing.refund(runtime, ctx, exc)
    relay = Relay(upstream, call)
    watch: NativeEvents = MessageStream(relay) if call.prepared.path == f"/{MESSAGES}" else ResponseStream(relay)
    return RelayResponse(
        _relay(relay, watch), media_type="text/event-stream", headers=SSE_HEADERS, on_close=relay.close
    )


def _message(error: Any) -> str | None:
    message = error.get("message") if isinstance(error, dict) else error
    return clean_message(message) if isinstance(message, str) and message.strip() else None


def _name(lines: list[bytes]) -> str | None:
    for line in lines:
        if line.startswith(b"event:"):
            return line[6:].strip().decode("utf-8", "replace")
    return None


def _data_bytes(lines: list[bytes]) -> int:
    return sum(len(line) - 5 for line in lines if line.startswith(b"data:"))


class NativeEvents:
    """How a native stream's events are read: `parsed` names the events whose data the
    platform reads (the rest pass as they are); `see` answers what to send for one."""

    parsed: frozenset[str] = frozenset()
    deltas: frozenset[str] = frozenset()  # events carrying generated text (the estimate's bytes)

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.done = False
        self.events = 0  # relayed so far

    def see(self, kind: str, data: dict[str, Any], lines: list[bytes]) -> bytes:
        raise NotImplementedError

    def error(self, code: str, message: str) -> bytes:
        raise NotImplementedError

    def _started(self, upstream_id: Any) -> None:
        ctx = self.relay.call.ctx
        if ctx.upstream_id is None and upstream_id:
            ctx.upstream_id = str(upstream_id)
            self.relay.call.runtime.holds.note(ctx.request_id, ctx.upstream_id)

    def _billed(self, native_usage: Any, chat_usage: dict[str, Any]) -> None:
        self.relay.bill(chat_usage)
        _with_charge(native_usage, chat_usage)


class MessageStream(NativeEvents):
    """Anthropic's events: `message_start` (its usage so far, the model), `message_delta`
    (the final usage), `message_stop` (the end), `error`."""

    parsed = frozenset({"message_start", "message_delta", "message_stop", "error"})
    deltas = frozenset({"content_block_delta"})

    def __init__(self, relay: Relay) -> None:
        super().__init__(relay)
        self.start_usage: Any = None

    def see(self, kind: str, data: dict[str, Any], lines: list[bytes]) -> bytes:
        if kind == "error":
            raise UpstreamError(
                f"Upstream provider reported an error mid-stream: {_message(data.get('error')) or 'error event'}"
            )
        if kind == "message_stop":
            self.done = True
            return _raw(lines)
        if kind == "message_start" and isinstance(data.get("message"), dict):
            message = data["message"]
            message["model"] = self.relay.call.model_id
            self.start_usage = message.get("usage")
            self._started(message.get("id"))
            return sse(kind, orjson.dumps(data))
        if kind == "message_delta":
            delta_usage = data.get("usage")
            self._billed(delta_usage, usages.from_anthropic(self.start_usage, delta_usage))
            return sse(kind, orjson.dumps(data))
        return _raw(lines)

    def error(self, code: str, message: str) -> bytes:
        return sse("error", orjson.dumps({"type": "error", "error": error_object(code, message)}))


class ResponseStream(NativeEvents):
    """The Responses API's events: the response as it starts (the model), as it ends
    (`response.completed` / `response.incomplete`, with the usage), `response.failed`, `error`."""

    _STARTS = frozenset({"response.created", "response.in_progress", "response.queued"})
    _ENDS = frozenset({"response.completed", "response.incomplete"})
    parsed = _STARTS | _ENDS | {"response.failed", "error"}
    deltas = frozenset(
        {
            "response.output_text.delta",
            "response.reasoning_summary_text.delta",
            "response.function_call_arguments.delta",
        }
    )

    def see(self, kind: str, data: dict[str, Any], lines: list[bytes]) -> bytes:
        if kind == "error":
            raise UpstreamError(f"Upstream provider reported an error mid-stream: {_message(data) or 'error event'}")
        response = data.get("response")
        if kind == "response.failed":
            error = response.get("error") if isinstance(response, dict) else None
            raise UpstreamError(f"Upstream provider reported a failed response: {_message(error) or 'failed'}")
        if not isinstance(response, dict):
            return _raw(lines)
        response["model"] = self.relay.call.model_id
        self._started(response.get("id"))
        if kind in self._ENDS:
            self.done = True
            native_usage = response.get("usage")
            if isinstance(native_usage, dict):
                self._billed(native_usage, usages.from_responses(native_usage))
        return sse(kind, orjson.dumps(data))

    def error(self, code: str, message: str) -> bytes:
        data = {
            "type": "error",
            "sequence_number": self.events,
            "code": code,
            "message": message,
            "param": None,
            "error": error_object(code, message),
        }
        return sse("error", orjson.dumps(data))


def _raw(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n\n"


async def _relay(relay: Relay, events: NativeEvents) -> AsyncIterator[bytes]:
    """Pass each event on as it arrives (see the module's docstring for what is read)."""
    try:
        try:
            async for lines in relay_blocks(relay.upstream):
                kind = _name(lines)
                if kind in events.deltas:
                    relay.relayed_bytes += _data_bytes(lines)
                    out = _raw(lines)
                elif kind is None or kind in events.parsed:
                    data = event_data(lines)[1]
                    if data is None:
                        out = _raw(lines)  # a comment, a keep-alive
                    else:
                        out = events.see(kind or str(data.get("type")), data, lines)
                else:
                    out = _raw(lines)
                events.events += 1
                yield out
            if not events.done:
                raise UpstreamError("Upstream stream ended before its end event")
        except Exception as exc:  # an upstream failure or a fault of ours, never the client leaving
            yield events.error(*await relay.failed(exc))
    finally:
        await relay.close()
