"""Other wire formats to and from chat completions: pure functions, no I/O.

    responses   OpenAI's Responses API (`POST /responses`)
    anthropic   Anthropic's Messages API (`POST /messages`)

Each turns a validated request into a chat-completions body (or an `invalid_request`
ApiError for what it cannot honour), and a chat answer or stream back into its format.
The billing, relay and request policy stay in api/chat_core.py.
"""

from __future__ import annotations

from typing import Any


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
