"""Reading a chat-completions answer, the way every other format renders it.

    answer(data)   a completion's first choice: its reasoning, text, tool calls, finish
                   reason and usage
    ChatEvents     a stream's first choice, chunk by chunk, as ordered `Piece`s (reasoning,
                   text, tool-call fragments) that each format writes as its own events

Reasoning comes as OpenRouter's `reasoning_details` (`reasoning.text` with a `signature`,
`reasoning.summary`, `reasoning.encrypted`) or, from other upstreams, as a plain
`reasoning` / `reasoning_content` string; where both come, the details win (OpenRouter
repeats their text in `reasoning`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import comments


@dataclass(slots=True)
class Thought:
    """One block of reasoning: its text and signature, or opaque (encrypted) `data`."""

    text: str = ""
    signature: str | None = None
    data: str | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str = ""  # the JSON text the model wrote


@dataclass(slots=True)
class Answer:
    thoughts: list[Thought]
    text: str
    calls: list[ToolCall]
    finish_reason: Any
    usage: Any


def typed(value: Any, kind: type, default: Any) -> Any:
    """`value` if it is a `kind`, else `default` (chat answers are the upstream's JSON)."""
    return value if isinstance(value, kind) else default


def _first(data: dict[str, Any]) -> dict[str, Any]:
    choices = data.get("choices")
    return choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}


def _thoughts(said: dict[str, Any]) -> list[Thought]:
    """The reasoning of a message (or of one stream delta)."""
    details = said.get("reasoning_details")
    if isinstance(details, list) and details:
        out = []
        for detail in details:
            if not isinstance(detail, dict):
                continue
            kind = detail.get("type")
            signature = detail.get("signature") if isinstance(detail.get("signature"), str) else None
            if kind == "reasoning.encrypted" and isinstance(detail.get("data"), str):
                out.append(Thought(data=detail["data"]))
            elif kind == "reasoning.summary" and isinstance(detail.get("summary"), str):
                out.append(Thought(detail["summary"]))
            elif kind == "reasoning.text":
                text = detail.get("text")
                out.append(Thought(text if isinstance(text, str) else "", signature))
        return out
    for name in ("reasoning", "reasoning_content"):
        if isinstance(said.get(name), str) and said[name]:
            return [Thought(said[name])]
    return []


def answer(data: dict[str, Any]) -> Answer:
    """What a chat completion's first choice says."""
    choice = _first(data)
    said: dict[str, Any] = typed(choice.get("message"), dict, {})
    calls = []
    for i, call in enumerate(typed(said.get("tool_calls"), list, [])):
        function = typed(call.get("function"), dict, {}) if isinstance(call, dict) else {}
        if isinstance(function.get("name"), str):
            call_id = typed(call.get("id"), str, "") or f"call_{i}"
            calls.append(ToolCall(call_id, function["name"], typed(function.get("arguments"), str, "")))
    text = typed(said.get("content"), str, "")
    return Answer(_thoughts(said), text, calls, choice.get("finish_reason"), data.get("usage"))


@dataclass(slots=True)
class Piece:
    """One fragment of a streamed answer. `key` tells which block it belongs to: pieces
    with the same key continue one block (one thinking block, the text, one tool call)."""

    key: tuple[Any, ...]
    text: str = ""  # reasoning or answer text, or a tool call's argument fragment
    signature: str | None = None
    data: str | None = None  # encrypted reasoning
    call_id: str | None = None  # a tool call's first fragment names it
    name: str | None = None

    @property
    def kind(self) -> str:
        return str(self.key[0])


class ChatEvents:
    """What a format's stream keeps of the chat chunks: the first choice's finish reason,
    the last usage, the tool calls so far (ids, names, arguments) and whether anything
    has been opened; `_pieces` reads one chunk."""

    __slots__ = ("opened", "finish_reason", "chat_usage", "calls", "_thinking")

    def __init__(self) -> None:
        self.opened = False
        self.finish_reason: Any = None
        self.chat_usage: Any = None
        self.calls: dict[int, ToolCall] = {}
        self._thinking = 0  # which thinking block reasoning pieces go to

    def _pieces(self, data: dict[str, Any]) -> list[Piece]:
        """The first choice's fragments in a chunk, in order; its usage and finish reason kept."""
        if isinstance(data.get("usage"), dict):
            self.chat_usage = data["usage"]
        pieces: list[Piece] = []
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason") is not None:
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            pieces += self._reasoning(delta)
            text = delta.get("content")
            if isinstance(text, str) and text:
                pieces.append(Piece(("text",), text))
            pieces += self._tool_pieces(delta.get("tool_calls"))
        return pieces

    def _reasoning(self, delta: dict[str, Any]) -> list[Piece]:
        out = []
        for thought in _thoughts(delta):
            if thought.data is not None:  # an opaque block is whole in one delta
                self._thinking += 1
                out.append(Piece(("redacted", self._thinking), data=thought.data))
                self._thinking += 1
            elif thought.text or thought.signature:
                out.append(Piece(("thinking", self._thinking), thought.text, thought.signature))
                if thought.signature:  # a signature ends its thinking block
                    self._thinking += 1
        return out

    def _tool_pieces(self, deltas: Any) -> list[Piece]:
        out = []
        for delta in deltas if isinstance(deltas, list) else ():
            if not isinstance(delta, dict):
                continue
            index: int = typed(delta.get("index"), int, len(self.calls))
            function: dict[str, Any] = typed(delta.get("function"), dict, {})
            arguments: str = typed(function.get("arguments"), str, "")
            call = self.calls.get(index)
            if call is None:
                call_id = typed(delta.get("id"), str, "") or f"call_{index}"
                name: str = typed(function.get("name"), str, "")
                call = self.calls[index] = ToolCall(call_id, name)
                out.append(Piece(("tool", index), arguments, call_id=call_id, name=name))
            else:
                out.append(Piece(("tool", index), arguments))
            call.arguments += arguments
        return out

    def other(self, lines: list[bytes]) -> bytes | None:
        return comments(lines)
