"""Other wire formats to and from chat completions: pure functions, no I/O.

    responses   OpenAI's Responses API (`POST /responses`)
    anthropic   Anthropic's Messages API (`POST /messages`)

Each turns a validated request into a chat-completions body (or an `invalid_request`
ApiError for what it cannot honour), and a chat answer or stream back into its format.
The billing, relay and request policy stay in api/chat_core.py.
"""

from __future__ import annotations

from collections.abc import Callable
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


def message_content(
    role: str,
    content: Any,
    where: str,
    noun: str,
    parts: Callable[[list[Any], str], str | list[dict[str, Any]]],
) -> dict[str, Any]:
    """A chat message from a string or a list of `noun` (read by `parts`)."""
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise refuse(f"`{where}.content` must be a string or a list of {noun}")
    return {"role": role, "content": parts(content, f"{where}.content")}


def joined(out: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only content as one string (every chat upstream takes it); with images, chat parts."""
    if all(part["type"] == "text" for part in out):
        return "".join(part["text"] for part in out)
    return out


def first_choice(data: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A chat completion's first choice and its text ("" without one)."""
    choices = data.get("choices")
    choice: dict[str, Any] = (
        choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    )
    said = choice.get("message")
    content = said.get("content") if isinstance(said, dict) else None
    return choice, content if isinstance(content, str) else ""


class ChatEvents:
    """What a format's stream keeps of the chat chunks: the first choice's finish reason,
    the last usage, and whether its text has been opened."""

    __slots__ = ("opened", "finish_reason", "chat_usage")

    def __init__(self) -> None:
        self.opened = False
        self.finish_reason: Any = None
        self.chat_usage: Any = None

    def _texts(self, data: dict[str, Any]) -> list[str]:
        """The first choice's text deltas in a chunk, its usage and finish reason kept."""
        if isinstance(data.get("usage"), dict):
            self.chat_usage = data["usage"]
        texts = []
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason") is not None:
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(text, str) and text:
                texts.append(text)
        return texts

    def other(self, lines: list[bytes]) -> bytes | None:
        return comments(lines)
