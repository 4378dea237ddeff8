"""Anthropic's Messages API ⇄ chat completions: the request (answers in anthropic_answer.py,
re-exported here so that a route uses one module).

Request (`chat_body`):
- `system` (a string or text blocks) becomes a system message, as does a `system` turn
  among the messages (Claude Code sends its per-turn instructions so); each message's content
  becomes chat content: `text`, `image` (base64 or URL) and `document` blocks (PDF
  base64 or URL → a chat `file` part; plain text and content sources → text);
  `cache_control` on any of them (and on `system` blocks and `tool_result` blocks) stays
  on the chat content part, which OpenRouter passes to models that cache; the top-level
  `cache_control` marks the last part of the last message, as Anthropic applies it.
- Assistant turns: text → `content`, `tool_use` blocks → `tool_calls` (arguments = the
  input as JSON text), `thinking` / `redacted_thinking` blocks → OpenRouter's
  `reasoning_details` (`reasoning.text` with its signature / `reasoning.encrypted`), so
  that a later call to a thinking model gets them back unchanged.
- `tool_result` blocks → `role: "tool"` messages, before the rest of their user turn
  (text and images of a result that a tool message cannot hold follow in a user
  message); `is_error` is kept as an "Error: " prefix; a `tool_reference` (Claude
  Code's tool search) → a line saying the tool is loaded.
- `tools`: client tools (no `type`, or `custom`) → functions (`input_schema` →
  `parameters`, `strict` kept); `defer_loading` is dropped, as a chat upstream has no
  tool search (a deferred tool is offered like any other). Every typed tool (server and
  Anthropic-defined ones: `web_search_*`, `web_fetch_*`, `code_execution_*`, `bash_*`,
  `text_editor_*`, `computer_*`, `memory_*`, `tool_search_tool_*`, …) is dropped, never
  refused: a chat upstream cannot run or define them, and the agent still runs with the
  others. A tool definition's own `cache_control` is dropped (chat tools have no place
  for it; a breakpoint on the system prompt, which follows the tools, caches them too).
- `tool_choice`: auto → "auto", any → "required", none → "none", tool → that function
  (a dropped tool → "auto"); `disable_parallel_tool_use` → `parallel_tool_calls: false`.
- `thinking: {type: enabled, budget_tokens}` → OpenRouter's `reasoning: {max_tokens}`;
  adaptive → `reasoning: {enabled: true}`, or with `output_config.effort` →
  `reasoning: {effort}` (`max` → `xhigh`); disabled → none. `output_config.format`
  (a JSON schema) → `response_format`.
- `max_tokens`, `temperature`, `top_p`, `stream` pass, `stop_sequences` → `stop`,
  `metadata.user_id` → `user`.
- Dropped, as nothing on a chat upstream does them and the model is asked the same:
  `context_management` (server-side clearing of old thinking and tool results: the
  chat upstream gets the whole history instead), `mcp_servers` and `container` (the
  platform runs no MCP connector or code container), `top_k`, `service_tier`, `speed`,
  `inference_geo`, `diagnostics`; the results of server tools in past turns
  (`server_tool_use`, `*_tool_result` blocks) with them. A block of an unknown type,
  a message of another role or a malformed field is refused (`invalid_request`).
"""

from __future__ import annotations

from typing import Any

import orjson

from . import chat_out, refuse
from .anthropic_answer import MessageEvents, message, stop_reason

__all__ = ["MessageEvents", "chat_body", "message", "stop_reason"]

PASSED = ("max_tokens", "temperature", "top_p", "stream")
# the blocks of server tools' calls and results in past turns: dropped with the tools
SERVER_BLOCKS = frozenset(
    {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)
EFFORTS = {"max": "xhigh"}  # Anthropic's effort → OpenRouter's, where they differ

Json = dict[str, Any]


def chat_body(body: Json) -> Json:
    """The chat-completions body for a validated Messages request."""
    messages: list[Json] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _system(system)})
    for i, said in enumerate(body["messages"]):
        messages.extend(_message(said, f"messages[{i}]"))
    if isinstance(body.get("cache_control"), dict):
        _mark_last(messages, body["cache_control"])
    out = chat_out(body, messages, PASSED)
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str) and user:
        out["user"] = user
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        out.update(_tool_choice(body.get("tool_choice"), {tool["function"]["name"] for tool in tools}))
    out.update(_reasoning(body.get("thinking"), body.get("output_config")))
    return out


# ---------------------------------------------------------------- content


def _text_part(text: str, block: Json) -> Json:
    part: Json = {"type": "text", "text": text}
    if isinstance(block.get("cache_control"), dict):
        part["cache_control"] = block["cache_control"]
    return part


def _content(parts: list[Json], sep: str = "") -> str | list[Json]:
    """Plain text as one string (every chat upstream takes it); parts where there is
    more than text, or a cache breakpoint to keep."""
    if all(part["type"] == "text" and "cache_control" not in part for part in parts):
        return sep.join(part["text"] for part in parts)
    return parts


def _system(system: Any, where: str = "system") -> str | list[Json]:
    if isinstance(system, str):
        return system
    parts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise refuse(f"`{where}[{i}]`: only text blocks are supported")
        parts.append(_text_part(block["text"], block))
    return _content(parts, "\n")


def _source_url(source: Any, where: str) -> str:
    """A base64 or URL source as a URL (a data URL for base64)."""
    if isinstance(source, dict):
        if source.get("type") == "base64" and isinstance(source.get("data"), str):
            media_type = source.get("media_type")
            if isinstance(media_type, str):
                return f"data:{media_type};base64,{source['data']}"
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return source["url"]
    raise refuse(f"`{where}.source`: only base64 and URL sources are supported")


def _part(block: Json, where: str) -> list[Json]:
    """The chat parts of one user content block (text, image, document, search result)."""
    kind = block.get("type")
    cache = {"cache_control": block["cache_control"]} if isinstance(block.get("cache_control"), dict) else {}
    if kind == "text" and isinstance(block.get("text"), str):
        return [_text_part(block["text"], block)]
    if kind == "image":
        return [{"type": "image_url", "image_url": {"url": _source_url(block.get("source"), where)}, **cache}]
    if kind == "document":
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
            return [_text_part(source["data"], block)]
        if isinstance(source, dict) and source.get("type") == "content" and isinstance(source.get("content"), list):
            return _parts(source["content"], f"{where}.source.content")
        title = block.get("title")
        filename = title if isinstance(title, str) and title else "document.pdf"
        return [{"type": "file", "file": {"filename": filename, "file_data": _source_url(source, where)}, **cache}]
    if kind == "search_result" and isinstance(block.get("content"), list):
        head = [block[name] for name in ("title", "source") if isinstance(block.get(name), str)]
        texts = [b["text"] for b in block["content"] if isinstance(b, dict) and isinstance(b.get("text"), str)]
        return [_text_part("\n".join(head + texts), block)]
    raise refuse(f"`{where}`: blocks of type {kind!r} are not supported here")


def _parts(blocks: list[Any], where: str) -> list[Json]:
    """The chat parts of a list of content blocks."""
    out = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise refuse(f"`{where}[{i}]` must be an object")
        out += _part(block, f"{where}[{i}]")
    return out


def _mark_last(messages: list[Json], cache_control: Json) -> None:
    """Put a cache breakpoint on the last content part of the last message that has any."""
    for said in reversed(messages):
        content = said.get("content")
        if isinstance(content, str) and content:
            said["content"] = [{"type": "text", "text": content, "cache_control": cache_control}]
            return
        if isinstance(content, list) and content:
            content[-1] = {**content[-1], "cache_control": cache_control}
            return


# ---------------------------------------------------------------- messages


def _message(said: Any, where: str) -> list[Json]:
    """The chat messages of one Anthropic message (a user turn with tool results gives
    the tool messages first)."""
    if not isinstance(said, dict):
        raise refuse(f"`{where}` must be an object")
    role = said.get("role")
    if role not in ("user", "assistant", "system"):
        raise refuse(f"`{where}.role` must be user, assistant or system")
    content = said.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise refuse(f"`{where}.content` must be a string or a list of blocks")
    if role == "system":  # a system turn mid-conversation (Claude Code's per-turn instructions)
        return [{"role": "system", "content": _system(content, f"{where}.content")}]
    where = f"{where}.content"
    return [_assistant(content, where)] if role == "assistant" else _user(content, where)


def _user(blocks: list[Any], where: str) -> list[Json]:
    tools: list[Json] = []
    parts: list[Json] = []
    moved: list[Json] = []  # what tool results hold that a tool message cannot
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise refuse(f"`{where}[{i}]` must be an object")
        if block.get("type") == "tool_result":
            message, extra = _tool_result(block, f"{where}[{i}]")
            tools.append(message)
            moved += extra
        elif block.get("type") not in SERVER_BLOCKS:
            parts += _part(block, f"{where}[{i}]")
    rest = moved + parts
    return tools + ([{"role": "user", "content": _content(rest)}] if rest else [])


def _tool_result(block: Json, where: str) -> tuple[Json, list[Json]]:
    """A tool message for a `tool_result` block, and the parts it cannot carry (images,
    files: chat tool messages take text only)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise refuse(f"`{where}.tool_use_id` must be a string")
    content = block.get("content")
    texts: list[str] = []
    moved: list[Json] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for j, inner in enumerate(content):
            if not isinstance(inner, dict):
                raise refuse(f"`{where}.content[{j}]` must be an object")
            if inner.get("type") == "tool_reference":
                texts.append(f"Tool loaded: {inner.get('tool_name')}")
                continue
            for part in _part(inner, f"{where}.content[{j}]"):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    moved.append(part)
    elif content is not None:
        raise refuse(f"`{where}.content` must be a string or a list of blocks")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    tool_content: str | list[Json] = text
    if isinstance(block.get("cache_control"), dict):
        tool_content = [{"type": "text", "text": text, "cache_control": block["cache_control"]}]
    return {"role": "tool", "tool_call_id": call_id, "content": tool_content}, moved


def _assistant(blocks: list[Any], where: str) -> Json:
    texts: list[Json] = []
    calls: list[Json] = []
    details: list[Json] = []
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        at = f"{where}[{i}]"
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(_text_part(block["text"], block))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise refuse(f"`{at}`: a tool_use block needs a string `id` and `name`")
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
            )
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            detail: Json = {"type": "reasoning.text", "text": block["thinking"]}
            if isinstance(block.get("signature"), str) and block["signature"]:
                detail["signature"] = block["signature"]
            details.append(detail)
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            details.append({"type": "reasoning.encrypted", "data": block["data"]})
        elif kind not in SERVER_BLOCKS:
            raise refuse(f"`{at}`: blocks of type {kind!r} are not supported in an assistant turn")
    out: Json = {"role": "assistant", "content": _content(texts) if texts else (None if calls else "")}
    if calls:
        out["tool_calls"] = calls
    if details:
        out["reasoning_details"] = [{**detail, "index": n} for n, detail in enumerate(details)]
    return out


# ---------------------------------------------------------------- tools and options


def _tools(tools: Any) -> list[Json]:
    out = []
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict):
            raise refuse(f"`tools[{i}]` must be an object")
        if tool.get("type") not in (None, "custom"):
            continue  # a server or Anthropic-defined tool: see the module's docstring
        if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
            raise refuse(f"`tools[{i}]`: a tool needs a string `name` and an object `input_schema`")
        function: Json = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, names: set[str]) -> Json:
    if not isinstance(choice, dict):
        return {}
    kind = choice.get("type")
    out: Json = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        name = choice.get("name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}} if name in names else "auto"
    else:
        raise refuse("`tool_choice.type` must be auto, any, tool or none")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


def _reasoning(thinking: Any, config: Any) -> Json:
    config = config if isinstance(config, dict) else {}
    out: Json = {}
    fmt = config.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True},
        }
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return out
    effort = config.get("effort")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if kind == "enabled" and isinstance(budget, int):
        out["reasoning"] = {"max_tokens": budget}
    elif isinstance(effort, str):
        out["reasoning"] = {"effort": EFFORTS.get(effort, effort)}
    elif kind is not None:
        out["reasoning"] = {"enabled": True}
    return out
