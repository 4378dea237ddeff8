"""Chat answers as OpenAI Responses: the Response object and the stream's typed events.

Output items, in the order the model produced them: reasoning text → a `reasoning` item
whose summary is that text (a chat upstream's signatures and encrypted reasoning have no
place a Responses client sends back to a chat upstream, so they are left out); text → the
`message` item; each tool call → the item its tool expects (api/translate/
responses_tools.py: `function_call` with its namespace, `custom_tool_call`, client
`tool_search_call`), found through the shell's `tools`. A finish by the token cap or the
content filter makes the response `incomplete`. Usage in the Responses' terms
(api/translate/usage.py).

The stream: `response.created` and `response.in_progress` first; each item opened with
`response.output_item.added` as its first fragment arrives, output indexes in order:
reasoning with `response.reasoning_summary_part.added` and
`response.reasoning_summary_text.delta`, the message with `response.content_part.added`
and `response.output_text.delta`, a function call with
`response.function_call_arguments.delta` per fragment; each closed with its done events
(`….done`, then `response.output_item.done`) when the next begins or the stream ends
(a custom tool's input, known only once its JSON is whole, comes in one
`response.custom_tool_call_input.delta` before its `.done`); then `response.completed`
(or `response.incomplete`) with the whole output and the usage, which arrives in the
stream's last chunk.
"""

from __future__ import annotations

from typing import Any

import orjson

from . import error_object, sse
from .chat import ChatEvents, Piece, answer
from .responses_tools import Names
from .usage import to_responses

# chat's finish_reason → the response's incomplete_details.reason
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}

Json = dict[str, Any]


def item_id(response_id: str) -> str:
    """The message item's id."""
    return "msg_" + response_id.removeprefix("resp_")


def _other_id(prefix: str, response_id: str, index: int) -> str:
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def _text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(message_id: str, text: str, status: str) -> Json:
    return {"type": "message", "id": message_id, "status": status, "role": "assistant", "content": [_text_part(text)]}


def _reasoning_item(reasoning_id: str, text: str) -> Json:
    return {"type": "reasoning", "id": reasoning_id, "summary": [{"type": "summary_text", "text": text}]}


def _status(finish_reason: Any) -> tuple[str, str | None]:
    reason = INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    return ("incomplete" if reason else "completed"), reason


def _finished(base: Json, output: list[Json], finish_reason: Any, chat_usage: Any) -> Json:
    status, reason = _status(finish_reason)
    return {
        **base,
        "status": status,
        "incomplete_details": {"reason": reason} if reason else None,
        "output": output,
        "usage": to_responses(chat_usage),
    }


def response(base: Json, data: Json) -> Json:
    """The Response for a chat completion (first choice)."""
    said = answer(data)
    names = Names(base["tools"])
    status, _ = _status(said.finish_reason)
    rid = base["id"]
    output: list[Json] = []
    for thought in said.thoughts:
        if thought.text:
            output.append(_reasoning_item(_other_id("rs", rid, len(output)), thought.text))
    if said.text or not said.calls:
        output.append(_message_item(item_id(rid), said.text, status))
    for call in said.calls:
        output.append(names.item(call, _other_id("fc", rid, len(output))))
    return _finished(base, output, said.finish_reason, said.usage)


class ResponseEvents(ChatEvents):
    """A chat stream as the Responses API's typed events (api.chat_core.EventFormat); see
    the module's docstring. A stream with nothing in it still has one (empty) message."""

    __slots__ = ("base", "names", "sequence", "items", "texts", "where", "current")

    def __init__(self, base: Json) -> None:
        super().__init__()
        self.base = base
        self.names = Names(base["tools"])
        self.sequence = 0
        self.items: list[Json] = []  # by output index, as they stand
        self.texts: dict[int, list[str]] = {}  # an item's text so far
        self.where: dict[tuple[Any, ...], int] = {}  # a piece's key → its item's output index
        self.current: tuple[Any, ...] | None = None  # the key of the open item

    def _event(self, kind: str, fields: Json) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return sse(kind, orjson.dumps(data))

    def _at(self, index: int) -> Json:
        return {"item_id": self.items[index]["id"], "output_index": index}

    def start(self) -> bytes:
        return self._event("response.created", {"response": self.base}) + self._event(
            "response.in_progress", {"response": self.base}
        )

    # ------------------------------------------------------------ items

    def _open(self, piece: Piece) -> bytes:
        out = self._close("completed")
        self.opened = True
        index = self.where[piece.key] = len(self.items)
        self.current = piece.key
        self.texts[index] = []
        rid = self.base["id"]
        if piece.kind == "thinking":
            item = {**_reasoning_item(_other_id("rs", rid, index), ""), "summary": []}
        elif piece.kind == "tool":
            call = self.calls[piece.key[1]]
            item = self.names.item(call, _other_id("fc", rid, index), status="in_progress")
            if item["type"] == "function_call":  # the fragments follow as deltas
                item["arguments"] = ""
            elif item["type"] == "custom_tool_call":
                item["input"] = ""
        else:
            message_id = (
                item_id(rid) if not any(i["type"] == "message" for i in self.items) else _other_id("msg", rid, index)
            )
            item = {**_message_item(message_id, "", "in_progress"), "content": []}
        self.items.append(item)
        out += self._event("response.output_item.added", {"output_index": index, "item": item})
        if piece.kind == "thinking":
            part = {"type": "summary_text", "text": ""}
            out += self._event(
                "response.reasoning_summary_part.added", {**self._at(index), "summary_index": 0, "part": part}
            )
        elif piece.kind == "text":
            out += self._event(
                "response.content_part.added", {**self._at(index), "content_index": 0, "part": _text_part("")}
            )
        return out

    def _delta(self, piece: Piece) -> bytes:
        index = self.where[piece.key]
        if not piece.text:
            return b""
        self.texts[index].append(piece.text)
        kind = self.items[index]["type"]
        if kind == "reasoning":
            fields = {**self._at(index), "summary_index": 0, "delta": piece.text}
            return self._event("response.reasoning_summary_text.delta", fields)
        if kind == "message":
            fields = {**self._at(index), "content_index": 0, "delta": piece.text, "logprobs": []}
            return self._event("response.output_text.delta", fields)
        if kind == "function_call":
            return self._event("response.function_call_arguments.delta", {**self._at(index), "delta": piece.text})
        return b""  # custom tools and tool search: whole when closed

    def _close(self, status: str) -> bytes:
        if self.current is None:
            return b""
        key, self.current = self.current, None
        index = self.where[key]
        text = "".join(self.texts[index])
        at = self._at(index)
        item = self.items[index]
        out = b""
        if item["type"] == "reasoning":
            part = {"type": "summary_text", "text": text}
            out += self._event("response.reasoning_summary_text.done", {**at, "summary_index": 0, "text": text})
            out += self._event("response.reasoning_summary_part.done", {**at, "summary_index": 0, "part": part})
            item = _reasoning_item(item["id"], text)
        elif item["type"] == "message":
            out += self._event("response.output_text.done", {**at, "content_index": 0, "text": text, "logprobs": []})
            out += self._event("response.content_part.done", {**at, "content_index": 0, "part": _text_part(text)})
            item = _message_item(item["id"], text, status)
        else:
            item = self.names.item(self.calls[key[1]], item["id"])
            if item["type"] == "function_call":
                out += self._event("response.function_call_arguments.done", {**at, "arguments": item["arguments"]})
            elif item["type"] == "custom_tool_call":
                out += self._event("response.custom_tool_call_input.delta", {**at, "delta": item["input"]})
                out += self._event("response.custom_tool_call_input.done", {**at, "input": item["input"]})
        self.items[index] = item
        return out + self._event("response.output_item.done", {"output_index": index, "item": item})

    # ------------------------------------------------------------ EventFormat

    def chunk(self, data: Json) -> bytes | None:
        out = b""
        for piece in self._pieces(data):
            if piece.kind == "redacted":
                continue  # encrypted reasoning: see the module's docstring
            if piece.key != self.current:
                if piece.kind == "tool" and piece.key in self.where:
                    # a late fragment of a call already closed: kept for the final output
                    index = self.where[piece.key]
                    self.items[index] = self.names.item(self.calls[piece.key[1]], self.items[index]["id"])
                    continue
                out += self._open(piece)
            out += self._delta(piece)
        return out or None

    def end(self, done: bool) -> bytes:
        status, _ = _status(self.finish_reason)
        out = self._close(status)
        if not self.opened:
            out += self._open(Piece(("text",))) + self._close(status)
        final = _finished(self.base, self.items, self.finish_reason, self.chat_usage)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        return out + self._event(kind, {"response": final})

    def error(self, code: str, message: str) -> bytes:
        """The Responses API's `error` event, carrying the platform's error object too (so
        the openai SDK raises it)."""
        data = {
            "type": "error",
            "sequence_number": self.sequence,
            "code": code,
            "message": message,
            "param": None,
            "error": error_object(code, message),
        }
        self.sequence += 1
        return sse("error", orjson.dumps(data))
