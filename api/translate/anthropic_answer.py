"""Chat answers as Anthropic's Messages: the plain Message and the stream's events.

Content blocks, in the order the model produced them: reasoning → `thinking` blocks
(with the signature OpenRouter's `reasoning_details` carry, else an empty one) or
`redacted_thinking` (encrypted reasoning), text → a `text` block, `tool_calls` →
`tool_use` blocks (id, name, the parsed arguments as `input`; arguments that are not a
JSON object give `{}`). `stop_reason` is "tool_use" whenever the answer calls a tool
(some upstreams finish a tool call with "stop", and an agent that sees "end_turn" after
a tool_use block stops or loops), "max_tokens" when cut by the cap. Usage is
Anthropic's: `input_tokens` without the cached tokens (api/translate/usage.py).

The stream: `message_start` and a `ping` first; then each block as Anthropic streams it
(`content_block_start`, its deltas: `thinking_delta` and `signature_delta`,
`text_delta`, `input_json_delta` with each `partial_json` fragment as it arrives,
`content_block_stop`), indexes in order; then `message_delta` (stop reason, usage from
the stream's last chunk) and `message_stop`.
"""

from __future__ import annotations

from typing import Any

import orjson

from . import error_object, sse
from .chat import ChatEvents, Piece, answer
from .usage import to_anthropic

# chat's finish_reason → Anthropic's stop_reason
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

Json = dict[str, Any]


def stop_reason(finish_reason: Any, called: bool = False) -> str:
    """Anthropic's stop reason for a chat finish reason; `called`: the answer calls a tool."""
    if finish_reason == "length":
        return "max_tokens"
    if called:
        return "tool_use"
    return STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"


def tool_input(arguments: str) -> Json:
    """A tool call's arguments as Anthropic's `input` object."""
    try:
        value = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def message(data: Json, *, message_id: str) -> Json:
    """The Message for a chat completion (first choice)."""
    said = answer(data)
    content: list[Json] = []
    for thought in said.thoughts:
        if thought.data is not None:
            content.append({"type": "redacted_thinking", "data": thought.data})
        else:
            content.append({"type": "thinking", "thinking": thought.text, "signature": thought.signature or ""})
    if said.text or not said.calls:
        content.append({"type": "text", "text": said.text})
    for call in said.calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call.arguments)})
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": data.get("model"),
        "content": content,
        "stop_reason": stop_reason(said.finish_reason, bool(said.calls)),
        "stop_sequence": None,
        "usage": to_anthropic(said.usage),
    }


def _event(kind: str, data: Json) -> bytes:
    return sse(kind, orjson.dumps({"type": kind, **data}))


class MessageEvents(ChatEvents):
    """A chat stream as Anthropic's events (api.chat_core.EventFormat); see the module's
    docstring. A stream with nothing in it still has one (empty) text block."""

    __slots__ = ("message_id", "model_id", "blocks", "current")

    def __init__(self, *, message_id: str, model_id: str) -> None:
        super().__init__()
        self.message_id, self.model_id = message_id, model_id
        self.blocks: dict[tuple[Any, ...], int] = {}  # a piece's key → its block's index
        self.current: tuple[Any, ...] | None = None  # the key of the open block

    def start(self) -> bytes:
        started: Json = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model_id,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"message": started}) + _event("ping", {})

    def _open(self, piece: Piece) -> bytes:
        out = self._close()
        self.opened = True
        index = self.blocks[piece.key] = len(self.blocks)
        self.current = piece.key
        block: Json
        if piece.kind == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        elif piece.kind == "redacted":
            block = {"type": "redacted_thinking", "data": piece.data}
        elif piece.kind == "tool":
            block = {"type": "tool_use", "id": piece.call_id, "name": piece.name, "input": {}}
        else:
            block = {"type": "text", "text": ""}
        return out + _event("content_block_start", {"index": index, "content_block": block})

    def _close(self) -> bytes:
        if self.current is None:
            return b""
        index, self.current = self.blocks[self.current], None
        return _event("content_block_stop", {"index": index})

    def _deltas(self, piece: Piece) -> bytes:
        index = self.blocks[piece.key]
        deltas: list[Json] = []
        if piece.kind == "thinking":
            if piece.text:
                deltas.append({"type": "thinking_delta", "thinking": piece.text})
            if piece.signature:
                deltas.append({"type": "signature_delta", "signature": piece.signature})
        elif piece.kind == "tool":
            if piece.text:
                deltas.append({"type": "input_json_delta", "partial_json": piece.text})
        elif piece.kind == "text":
            deltas.append({"type": "text_delta", "text": piece.text})
        return b"".join(_event("content_block_delta", {"index": index, "delta": delta}) for delta in deltas)

    def chunk(self, data: Json) -> bytes | None:
        out = b""
        for piece in self._pieces(data):
            # a tool call's late fragment (after another block began) goes to its own block
            if piece.key != self.current and not (piece.kind == "tool" and piece.key in self.blocks):
                out += self._open(piece)
            out += self._deltas(piece)
        return out or None

    def end(self, done: bool) -> bytes:
        out = self._close()
        if not self.opened:
            out += self._open(Piece(("text",))) + self._close()
        delta = {"stop_reason": stop_reason(self.finish_reason, bool(self.calls)), "stop_sequence": None}
        out += _event("message_delta", {"delta": delta, "usage": to_anthropic(self.chat_usage)})
        return out + _event("message_stop", {})

    def error(self, code: str, message: str) -> bytes:
        """Anthropic's `error` event, whose `error` object is the platform's."""
        return _event("error", {"error": error_object(code, message)})
