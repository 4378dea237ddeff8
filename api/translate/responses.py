"""OpenAI's Responses API ⇄ chat completions (text in and out).

Request: `instructions` becomes a system message; `input` (a string, or message items
whose content is a string or `input_text`/`output_text`/`input_image` parts) becomes
`messages`; `max_output_tokens` → `max_tokens`, `text.format` → `response_format`,
`text.verbosity` → `verbosity`, `reasoning.effort` → `reasoning_effort`; `temperature`,
`top_p`, `user`, `safety_identifier`, `prompt_cache_key` pass. What needs state or tools the
platform does not keep (`previous_response_id`, `conversation`, `prompt`, `background`,
`tools`, non-message input items) is refused; the rest (`store`, `metadata`, `include`,
`truncation`, `service_tier`, …) is dropped, as the chat request policy drops it.
"""

from __future__ import annotations

from typing import Any

import orjson

from . import ChatEvents, chat_out, check_refused, error_object, first_choice, joined, message_content, refuse, sse

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
REFUSED = {
    "previous_response_id": "conversation state is not kept: send the whole conversation as `input`",
    "conversation": "conversation state is not kept: send the whole conversation as `input`",
    "prompt": "stored prompts are not supported",
    "background": "background responses are not supported",
    "tools": "tools are not supported on /responses; use /chat/completions",
}
PASSED = ("temperature", "top_p", "user", "safety_identifier", "prompt_cache_key", "stream")
# chat's finish_reason → (the response's status, its incomplete_details.reason)
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body for a validated Responses request."""
    check_refused(body, REFUSED)
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    source = body["input"]
    if isinstance(source, str):
        messages.append({"role": "user", "content": source})
    else:
        messages.extend(_message(item, f"input[{i}]") for i, item in enumerate(source))
    out = chat_out(body, messages, PASSED)
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    out.update(_text_options(body.get("text")))
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        if not isinstance(effort, str):
            raise refuse("`reasoning.effort` must be a string")
        out["reasoning_effort"] = effort
    return out


def _message(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise refuse(f"`{where}` must be an object")
    kind = item.get("type", "message")
    if kind != "message":
        raise refuse(f"`{where}`: items of type {kind!r} are not supported (only messages)")
    given = item.get("role")
    role = ROLES.get(given) if isinstance(given, str) else None
    if role is None:
        raise refuse(f"`{where}.role` must be one of user, assistant, system, developer")
    return message_content(role, item.get("content"), where, "parts", _parts)


def _parts(parts: list[Any], where: str) -> str | list[dict[str, Any]]:
    """Text-only content as one string (every chat upstream takes it); with images, chat parts."""
    out: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image = {"url": part["image_url"]}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        else:
            raise refuse(f"`{where}[{i}]`: only input_text, output_text and input_image (by URL) parts are supported")
    return joined(out)


def _text_options(text: dict[str, Any] | None) -> dict[str, Any]:
    if not text:
        return {}
    out: dict[str, Any] = {}
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return out
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {name: fmt[name] for name in ("name", "schema", "strict", "description") if name in fmt}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise refuse("`text.format.type` must be text, json_object or json_schema")
    return out


# ---------------------------------------------------------------- answers


def shell(body: dict[str, Any], *, response_id: str, model_id: str, created: int, max_tokens: int) -> dict[str, Any]:
    """The Response object before any output: what every event and the answer repeat."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "model": model_id,
        "output": [],
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": max_tokens,
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": False,
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "tool_choice": "auto",
        "tools": [],
        "text": body.get("text") or {"format": {"type": "text"}},
        "usage": None,
    }


def item_id(response_id: str) -> str:
    return "msg_" + response_id.removeprefix("resp_")


def usage(chat_usage: Any) -> dict[str, Any] | None:
    """Chat's usage in the Responses' terms; `cost` (the credits charged) kept."""
    if not isinstance(chat_usage, dict):
        return None
    prompt = chat_usage.get("prompt_tokens") or 0
    completion = chat_usage.get("completion_tokens") or 0
    cached = (chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (chat_usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    out = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": chat_usage.get("total_tokens") or prompt + completion,
    }
    if "cost" in chat_usage:
        out["cost"] = chat_usage["cost"]
    return out


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(message_id: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": message_id, "status": status, "role": "assistant", "content": [_text_part(text)]}


def _finished(base: dict[str, Any], text: str, finish_reason: Any, chat_usage: Any) -> dict[str, Any]:
    reason = INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    status = "incomplete" if reason else "completed"
    return {
        **base,
        "status": status,
        "incomplete_details": {"reason": reason} if reason else None,
        "output": [_message_item(item_id(base["id"]), text, status)],
        "usage": usage(chat_usage),
    }


def response(base: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The Response for a chat completion (first choice)."""
    choice, text = first_choice(data)
    return _finished(base, text, choice.get("finish_reason"), data.get("usage"))


class ResponseEvents(ChatEvents):
    """A chat stream as the Responses API's typed events (api.chat_core.EventFormat):
    created and in_progress first, the message item and its text part opened with the
    first text, a delta per chunk, then the done events and `response.completed` (or
    `response.incomplete`) with the usage, which arrives in the stream's last chunk."""

    __slots__ = ("base", "message_id", "sequence", "texts")

    def __init__(self, base: dict[str, Any]) -> None:
        super().__init__()
        self.base = base
        self.message_id = item_id(base["id"])
        self.sequence = 0
        self.texts: list[str] = []

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return sse(kind, orjson.dumps(data))

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.message_id, "output_index": 0, "content_index": 0}

    def _open(self) -> bytes:
        self.opened = True
        item = {**_message_item(self.message_id, "", "in_progress"), "content": []}
        return self._event("response.output_item.added", {"output_index": 0, "item": item}) + self._event(
            "response.content_part.added", {**self._where(), "part": _text_part("")}
        )

    def start(self) -> bytes:
        return self._event("response.created", {"response": self.base}) + self._event(
            "response.in_progress", {"response": self.base}
        )

    def chunk(self, data: dict[str, Any]) -> bytes | None:
        out = b""
        for text in self._texts(data):
            if not self.opened:
                out += self._open()
            self.texts.append(text)
            out += self._event("response.output_text.delta", {**self._where(), "delta": text, "logprobs": []})
        return out or None

    def end(self, done: bool) -> bytes:
        out = b"" if self.opened else self._open()
        text = "".join(self.texts)
        final = _finished(self.base, text, self.finish_reason, self.chat_usage)
        item = final["output"][0]
        out += self._event("response.output_text.done", {**self._where(), "text": text, "logprobs": []})
        out += self._event("response.content_part.done", {**self._where(), "part": _text_part(text)})
        out += self._event("response.output_item.done", {"output_index": 0, "item": item})
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
