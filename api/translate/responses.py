"""OpenAI's Responses API ⇄ chat completions: the request and the Response's shell
(answers in responses_answer.py, re-exported here so that a route uses one module).

Request (`chat_body`):
- `instructions` becomes a system message; `input` (a string, or items) becomes
  `messages`: message items (a string, or `input_text` / `output_text` / `refusal` /
  `input_image` by URL / `input_file` as data or URL parts) as today; `function_call`,
  `custom_tool_call` and a client `tool_search_call` → the assistant's `tool_calls`
  (joined with the assistant message before them); `function_call_output`,
  `custom_tool_call_output` → `role: "tool"` messages (text; the images and files of an
  output follow the turn's tool messages in a user message, as a tool message holds text
  only), `tool_search_output` → a tool message naming the tools it loaded.
- `reasoning` items are dropped: their `encrypted_content` is OpenAI's, which no chat
  upstream can read, and their summary is the model's own. So are the items of hosted
  and built-in tools (`web_search_call`, `file_search_call`, `code_interpreter_call`,
  `image_generation_call`, `computer_call*`, `mcp_*`, `local_shell_call*`,
  `shell_call*`, `apply_patch_call*`, server-run tool searches), whose tools are
  dropped, and `compaction` items (encrypted context only OpenAI reads).
- `tools` and `tool_choice`: api/translate/responses_tools.py (functions, custom tools,
  namespaces, client tool search; hosted tools dropped). `tool_choice` auto / none /
  required pass, a named function or custom tool → that function, `allowed_tools` →
  chat's `allowed_tools`, a hosted tool's → "auto" (that tool is dropped).
  `parallel_tool_calls` passes (with tools: chat refuses it without).
- `max_output_tokens` → `max_tokens`, `text.format` → `response_format`, `text.verbosity`
  → `verbosity`, `reasoning.effort` → `reasoning_effort`; `temperature`, `top_p`,
  `user`, `safety_identifier`, `prompt_cache_key` (chat's cache-routing key) pass.
- Refused, as they need state the platform does not keep: `previous_response_id`,
  `conversation`, `prompt` (stored prompts), `background`, `item_reference` items, and
  files by id. Dropped: `store` (nothing is stored, so a later `previous_response_id`
  is refused), `include` (encrypted reasoning and logprobs a chat answer cannot give),
  `reasoning.summary`, `max_tool_calls`, `metadata`, `client_metadata`, `truncation`,
  `service_tier`, `stream_options`, as the chat request policy drops what it does not know.
"""

from __future__ import annotations

from typing import Any

import orjson

from . import chat_out, check_refused, refuse
from .responses_answer import ResponseEvents, item_id, response
from .responses_tools import Names, chat_tools, flat_name, offered

__all__ = ["ResponseEvents", "chat_body", "item_id", "response", "shell"]

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
REFUSED = {
    "previous_response_id": "conversation state is not kept: send the whole conversation as `input`",
    "conversation": "conversation state is not kept: send the whole conversation as `input`",
    "prompt": "stored prompts are not supported",
    "background": "background responses are not supported",
}
PASSED = ("temperature", "top_p", "user", "safety_identifier", "prompt_cache_key", "stream")
# items of hosted and built-in tools, reasoning and compaction: dropped (see the docstring)
DROPPED_ITEMS = frozenset(
    {
        "reasoning",
        "compaction",
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "computer_call",
        "computer_call_output",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
    }
)

Json = dict[str, Any]


def chat_body(body: Json) -> Json:
    """The chat-completions body for a validated Responses request."""
    check_refused(body, REFUSED)
    tools = offered(body)
    messages: list[Json] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    source = body["input"]
    if isinstance(source, str):
        messages.append({"role": "user", "content": source})
    else:
        messages += _Conversation(Names(tools)).messages(source)
    out = chat_out(body, messages, PASSED)
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    out.update(_text_options(body.get("text")))
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        if not isinstance(effort, str):
            raise refuse("`reasoning.effort` must be a string")
        out["reasoning_effort"] = effort
    functions = chat_tools(tools)
    if functions:
        out["tools"] = functions
        names = {tool["function"]["name"] for tool in functions}
        choice = _tool_choice(body.get("tool_choice"), names)
        if choice is not None:
            out["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    return out


# ---------------------------------------------------------------- input items


def _text(output: Any, where: str) -> tuple[str, list[Json]]:
    """A tool output's text, and the parts (images, files) a tool message cannot hold."""
    if isinstance(output, str):
        return output, []
    if not isinstance(output, list):
        raise refuse(f"`{where}` must be a string or a list of parts")
    texts: list[str] = []
    moved: list[Json] = []
    for part in _parts(output, where):
        if part["type"] == "text":
            texts.append(part["text"])
        else:
            moved.append(part)
    return "\n".join(texts), moved


class _Conversation:
    """Input items → chat messages: a tool call joins the assistant message before it;
    what tool outputs hold beyond text follows the run of tool messages."""

    __slots__ = ("names", "out", "moved")

    def __init__(self, names: Names) -> None:
        self.names = names
        self.out: list[Json] = []
        self.moved: list[Json] = []

    def messages(self, items: list[Any]) -> list[Json]:
        for i, item in enumerate(items):
            self._item(item, f"input[{i}]")
        self._flush()
        return self.out

    def _flush(self) -> None:
        if self.moved:
            self.out.append({"role": "user", "content": self.moved})
            self.moved = []

    def _add(self, message: Json) -> None:
        if message["role"] != "tool":
            self._flush()
        self.out.append(message)

    def _call(self, call_id: Any, name: str, arguments: str, where: str) -> None:
        if not isinstance(call_id, str) or not call_id:
            raise refuse(f"`{where}.call_id` must be a string")
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        last = self.out[-1] if self.out else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
            if last.get("content") == "":
                last["content"] = None
        else:
            self._add({"role": "assistant", "content": None, "tool_calls": [call]})

    def _output(self, item: Json, content: str, where: str, moved: list[Json] | None = None) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise refuse(f"`{where}.call_id` must be a string")
        self._add({"role": "tool", "tool_call_id": call_id, "content": content})
        self.moved += moved or []

    def _item(self, item: Any, where: str) -> None:
        if not isinstance(item, dict):
            raise refuse(f"`{where}` must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            self._add(_message(item, where))
        elif kind == "function_call":
            name, namespace, arguments = item.get("name"), item.get("namespace"), item.get("arguments")
            if not isinstance(name, str) or not isinstance(arguments, str):
                raise refuse(f"`{where}`: a function_call needs a string `name` and `arguments`")
            self._call(
                item.get("call_id"),
                flat_name(name, namespace if isinstance(namespace, str) else None),
                arguments,
                where,
            )
        elif kind == "custom_tool_call":
            name, given = item.get("name"), item.get("input")
            if not isinstance(name, str) or not isinstance(given, str):
                raise refuse(f"`{where}`: a custom_tool_call needs a string `name` and `input`")
            self._call(item.get("call_id"), name, orjson.dumps({"input": given}).decode(), where)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            text, moved = _text(item.get("output"), f"{where}.output")
            self._output(item, text, where, moved)
        elif kind == "tool_search_call" and item.get("execution") == "client":
            arguments = item.get("arguments")
            self._call(item.get("call_id"), "tool_search", orjson.dumps(arguments or {}).decode(), where)
        elif kind == "tool_search_output" and item.get("execution") == "client":
            loaded = chat_tools([tool for tool in item.get("tools") or () if isinstance(tool, dict)])
            names = ", ".join(tool["function"]["name"] for tool in loaded)
            self._output(item, f"Tools loaded: {names}" if names else "No tools found.", where)
        elif kind in DROPPED_ITEMS or kind in ("tool_search_call", "tool_search_output"):
            return
        elif kind == "item_reference":
            raise refuse(f"`{where}`: item references need stored state, which is not kept: send the items")
        else:
            raise refuse(f"`{where}`: items of type {kind!r} are not supported")


def _message(item: Json, where: str) -> Json:
    given = item.get("role")
    role = ROLES.get(given) if isinstance(given, str) else None
    if role is None:
        raise refuse(f"`{where}.role` must be one of user, assistant, system, developer")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise refuse(f"`{where}.content` must be a string or a list of parts")
    parts = _parts(content, f"{where}.content")
    if all(part["type"] == "text" for part in parts):
        return {"role": role, "content": "".join(part["text"] for part in parts)}
    return {"role": role, "content": parts}


def _parts(parts: list[Any], where: str) -> list[Json]:
    out: list[Json] = []
    for i, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            out.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image = {"url": part["image_url"]}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and isinstance(data := part.get("file_data") or part.get("file_url"), str):
            filename = part.get("filename") if isinstance(part.get("filename"), str) else "file"
            out.append({"type": "file", "file": {"filename": filename, "file_data": data}})
        else:
            raise refuse(
                f"`{where}[{i}]`: only input_text, output_text, refusal, input_image (by URL) and input_file "
                "(as data or URL) parts are supported"
            )
    return out


# ---------------------------------------------------------------- options


def _tool_choice(choice: Any, names: set[str]) -> Any:
    """Chat's tool_choice for the Responses one (None: leave it out)."""
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return choice
    if not isinstance(choice, dict):
        raise refuse("`tool_choice` must be auto, none, required or an object")
    kind = choice.get("type")
    if kind in ("function", "custom"):
        name = flat_name(choice.get("name") or "", choice.get("namespace"))
        return {"type": "function", "function": {"name": name}} if name in names else "auto"
    if kind == "allowed_tools":
        allowed = [
            {"type": "function", "function": {"name": flat_name(tool.get("name") or "", tool.get("namespace"))}}
            for tool in choice.get("tools") or ()
            if isinstance(tool, dict) and flat_name(tool.get("name") or "", tool.get("namespace")) in names
        ]
        mode = choice.get("mode") if choice.get("mode") in ("auto", "required") else "auto"
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": allowed}} if allowed else "auto"
    return "auto"  # a hosted tool's, which is dropped


def _text_options(text: Json | None) -> Json:
    if not text:
        return {}
    out: Json = {}
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


# ---------------------------------------------------------------- the Response


def shell(body: Json, *, response_id: str, model_id: str, created: int, max_tokens: int) -> Json:
    """The Response object before any output: what every event and the answer repeat.
    `tools` are the ones the model was offered (api/translate/responses_tools.py), which
    is also how its tool calls find their way back."""
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
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": offered(body),
        "text": body.get("text") or {"format": {"type": "text"}},
        "usage": None,
    }
