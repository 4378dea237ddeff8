"""Anthropic's Messages API ⇄ chat completions (text and images in, text out).

Request: `system` (a string or text blocks) becomes a system message; each message's
content (a string, or `text` and `image` blocks, base64 or URL) becomes chat content;
`max_tokens`, `temperature`, `top_p`, `stream` pass, `stop_sequences` → `stop`,
`metadata.user_id` → `user`. Tools, tool results, documents, extended thinking, MCP
servers and containers are refused; `top_k`, `tool_choice`, `service_tier` are dropped.
"""

from __future__ import annotations

from typing import Any

import orjson

from . import ChatEvents, chat_out, check_refused, error_object, first_choice, joined, message_content, refuse, sse

REFUSED = {
    "tools": "tools are not supported on /messages; use /chat/completions",
    "mcp_servers": "MCP servers are not supported",
    "container": "containers are not supported",
}
PASSED = ("max_tokens", "temperature", "top_p", "stream")
# chat's finish_reason → Anthropic's stop_reason
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body for a validated Messages request."""
    check_refused(body, REFUSED)
    thinking = body.get("thinking")
    if thinking and not (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        raise refuse("`thinking`: extended thinking is not supported")
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": system if isinstance(system, str) else _system_text(system)})
    messages.extend(_message(message, f"messages[{i}]") for i, message in enumerate(body["messages"]))
    out = chat_out(body, messages, PASSED)
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str) and user:
        out["user"] = user
    return out


def _system_text(blocks: list[dict[str, Any]]) -> str:
    texts = []
    for i, block in enumerate(blocks):
        if block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise refuse(f"`system[{i}]`: only text blocks are supported")
        texts.append(block["text"])
    return "\n".join(texts)


def _message(message: Any, where: str) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise refuse(f"`{where}` must be an object")
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise refuse(f"`{where}.role` must be user or assistant")
    return message_content(role, message.get("content"), where, "blocks", _blocks)


def _blocks(blocks: list[Any], where: str) -> str | list[dict[str, Any]]:
    """Text-only content as one string (every chat upstream takes it); with images, chat parts."""
    out: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            out.append({"type": "text", "text": block["text"]})
        elif kind == "image" and (url := _image_url(block.get("source"))):
            out.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise refuse(f"`{where}[{i}]`: only text and image (base64 or URL) blocks are supported")
    return joined(out)


def _image_url(source: Any) -> str | None:
    if not isinstance(source, dict):
        return None
    if (
        source.get("type") == "base64"
        and isinstance(source.get("data"), str)
        and isinstance(source.get("media_type"), str)
    ):
        return f"data:{source['media_type']};base64,{source['data']}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return source["url"]
    return None


# ---------------------------------------------------------------- answers


def usage(chat_usage: Any) -> dict[str, Any]:
    """Chat's usage in Anthropic's terms (input tokens read from cache apart, as Anthropic
    counts them); `cost` (the credits charged) kept."""
    if not isinstance(chat_usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = chat_usage.get("prompt_tokens") or 0
    cached = (chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    out = {"input_tokens": prompt - cached, "output_tokens": chat_usage.get("completion_tokens") or 0}
    if cached:
        out["cache_read_input_tokens"] = cached
    if "cost" in chat_usage:
        out["cost"] = chat_usage["cost"]
    return out


def stop_reason(finish_reason: Any) -> str:
    return STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"


def message(data: dict[str, Any], *, message_id: str) -> dict[str, Any]:
    """The Message for a chat completion (first choice)."""
    choice, text = first_choice(data)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": data.get("model"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": usage(data.get("usage")),
    }


class MessageEvents(ChatEvents):
    """A chat stream as Anthropic's events (api.chat_core.EventFormat): `message_start` and
    a `ping` first, the text block opened with the first text, a `text_delta` per chunk,
    then `content_block_stop`, `message_delta` (stop reason, usage from the stream's last
    chunk) and `message_stop`."""

    __slots__ = ("message_id", "model_id")

    def __init__(self, *, message_id: str, model_id: str) -> None:
        super().__init__()
        self.message_id, self.model_id = message_id, model_id

    def _open(self) -> bytes:
        self.opened = True
        return sse(
            "content_block_start",
            orjson.dumps({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        )

    def start(self) -> bytes:
        started: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model_id,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return sse("message_start", orjson.dumps({"type": "message_start", "message": started})) + sse(
            "ping", b'{"type":"ping"}'
        )

    def chunk(self, data: dict[str, Any]) -> bytes | None:
        out = b""
        for text in self._texts(data):
            if not self.opened:
                out += self._open()
            out += sse(
                "content_block_delta",
                orjson.dumps(
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
                ),
            )
        return out or None

    def end(self, done: bool) -> bytes:
        out = b"" if self.opened else self._open()
        out += sse("content_block_stop", b'{"type":"content_block_stop","index":0}')
        out += sse(
            "message_delta",
            orjson.dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason(self.finish_reason), "stop_sequence": None},
                    "usage": usage(self.chat_usage),
                }
            ),
        )
        return out + sse("message_stop", b'{"type":"message_stop"}')

    def error(self, code: str, message: str) -> bytes:
        """Anthropic's `error` event, whose `error` object is the platform's."""
        return sse("error", orjson.dumps({"type": "error", "error": error_object(code, message)}))
