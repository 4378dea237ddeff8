"""Other wire formats to and from chat completions: pure functions, no I/O.

    anthropic, anthropic_answer   Anthropic's Messages API (`POST /messages`): the
                                  request to chat, chat answers and streams back
    responses, responses_answer   OpenAI's Responses API (`POST /responses`), likewise;
    responses_tools               its tools as chat functions and tool calls back
    chat                          reading a chat answer or stream, for both
    usage                         token usage between the formats, normalised once

Each turns a validated request into a chat-completions body (or an `invalid_request`
ApiError for what it cannot honour: what is impossible to map is dropped with a reason
given in the module's docstring, unless dropping it would change what the model is
asked to do), and a chat answer or stream back into its format. The billing, relay and
request policy stay in api/chat_core.py.
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError


def error_object(code: str, message: str) -> dict[str, Any]:
    """The platform's error object (api.errors' shape), for a format's mid-stream error event."""
    return {"message": message, "type": code, "code": code}


def sse(kind: str, payload: bytes) -> bytes:
    """One named server-sent event."""
    return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


def comments(lines: list[bytes]) -> bytes | None:
    """The SSE comments (keep-alives) of an upstream event that is not relayed as such."""
    kept = [line for line in lines if line.startswith(b":")]
    return b"\n".join(kept) + b"\n\n" if kept else None


def refuse(message: str) -> ApiError:
    """The `invalid_request` error for what a format's request asks and cannot be honoured."""
    return ApiError("invalid_request", message)


def check_refused(body: dict[str, Any], refused: dict[str, str]) -> None:
    """Refuse the request if it sets any of `refused` (name → why)."""
    for name, why in refused.items():
        if body.get(name):
            raise refuse(f"`{name}`: {why}")


def chat_out(body: dict[str, Any], messages: list[dict[str, Any]], passed: tuple[str, ...]) -> dict[str, Any]:
    """The chat body's model and messages, with the `passed` fields the request sets."""
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    for name in passed:
        if body.get(name) is not None:
            out[name] = body[name]
    return out
