"""The Responses API's tools as chat functions, and a chat tool call back as the item
the caller's tool expects.

What the model is offered (`offered`): the request's `function` and `custom` tools, the
functions and custom tools of each `namespace` (flattened as `<namespace>__<name>`,
the names Codex gave MCP tools before namespaces), a client-run `tool_search` (Codex:
the agent searches its deferred tools itself), and the tools such a search already
loaded (`tool_search_output` items in `input`, e.g. Codex's MCP tools). `defer_loading`
is dropped: a chat upstream has no tool search of its own, so a deferred tool is
offered like any other. Hosted tools (`web_search`, `web_search_preview`,
`file_search`, `code_interpreter`, `mcp`, `image_generation`, `computer_use_preview`,
a server-run `tool_search`, and the built-in client tools `local_shell`, `shell`,
`apply_patch` whose schemas only OpenAI's models know) are dropped, never refused.

As chat functions (`chat_tools`): a function keeps its name, description, parameters and
`strict`; a custom (freeform) tool becomes a function of one string parameter, `input`,
whose description carries the tool's grammar; `tool_search` keeps its parameters.
`Names` maps a chat function name back: a `function_call` (with its `namespace`), a
`custom_tool_call` (the `input` string unwrapped) or a client `tool_search_call`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from . import refuse
from .chat import ToolCall

Json = dict[str, Any]
SEPARATOR = "__"  # namespace__name


def flat_name(name: str, namespace: str | None) -> str:
    return f"{namespace}{SEPARATOR}{name}" if namespace else name


def _client_search(tool: Json) -> bool:
    return tool.get("type") == "tool_search" and tool.get("execution") == "client"


def offered(body: Json) -> list[Json]:
    """The Responses tools the model is offered, as the request and its tool searches give them."""
    out: list[Json] = []
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict):
            raise refuse(f"`tools[{i}]` must be an object")
        if tool.get("type") in ("function", "custom", "namespace") or _client_search(tool):
            out.append(tool)
    source = body.get("input")
    for item in source if isinstance(source, list) else ():
        if isinstance(item, dict) and item.get("type") == "tool_search_output" and item.get("execution") == "client":
            out += [tool for tool in item.get("tools") or () if isinstance(tool, dict)]
    return out


@dataclass(frozen=True, slots=True)
class Origin:
    kind: str  # function, custom, tool_search
    name: str
    namespace: str | None = None


def _custom_function(tool: Json, name: str) -> Json:
    described = "The whole input, as one string"
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        described += f", following this {fmt.get('syntax') or ''} grammar:\n{fmt['definition']}"
    description = tool.get("description") if isinstance(tool.get("description"), str) else ""
    return {
        "name": name,
        "description": (description + "\n\n" if description else "") + "Put the whole input in `input`.",
        "parameters": {
            "type": "object",
            "properties": {"input": {"type": "string", "description": described}},
            "required": ["input"],
            "additionalProperties": False,
        },
    }


def _function(tool: Json, name: str) -> Json:
    function: Json = {"name": name, "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return function


def _entries(tools: list[Json]) -> list[tuple[Origin, Json]]:
    """Each offered tool as (where a call goes back, its chat function), first name wins."""
    out: dict[str, tuple[Origin, Json]] = {}

    def add(tool: Any, namespace: str | None, where: str) -> None:
        if not isinstance(tool, dict):
            return
        kind, name = tool.get("type"), tool.get("name")
        if _client_search(tool):
            out.setdefault("tool_search", (Origin("tool_search", "tool_search"), _function(tool, "tool_search")))
            return
        if kind not in ("function", "custom"):
            return
        if not isinstance(name, str) or not name:
            raise refuse(f"`{where}`: a {kind} tool needs a string `name`")
        flat = flat_name(name, namespace)
        function = _custom_function(tool, flat) if kind == "custom" else _function(tool, flat)
        out.setdefault(flat, (Origin(kind, name, namespace), function))

    for i, tool in enumerate(tools):
        if tool.get("type") == "namespace":
            namespace = tool.get("name")
            if not isinstance(namespace, str) or not namespace:
                raise refuse(f"`tools[{i}]`: a namespace needs a string `name`")
            for j, inner in enumerate(tool.get("tools") or ()):
                add(inner, namespace, f"tools[{i}].tools[{j}]")
        else:
            add(tool, None, f"tools[{i}]")
    return list(out.values())


def chat_tools(tools: list[Json]) -> list[Json]:
    """The chat `tools` for the offered Responses tools."""
    return [{"type": "function", "function": function} for _, function in _entries(tools)]


def _parsed(arguments: str) -> Any:
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return None


class Names:
    """Chat function names → the offered tools they stand for."""

    __slots__ = ("origins",)

    def __init__(self, tools: list[Json]) -> None:
        self.origins = {function["name"]: origin for origin, function in _entries(tools)}

    def origin(self, name: str) -> Origin:
        return self.origins.get(name) or Origin("function", name)

    def kind(self, name: str) -> str:
        return self.origin(name).kind

    def item(self, call: ToolCall, item_id: str, status: str = "completed") -> Json:
        """The output item for a chat tool call."""
        origin = self.origin(call.name)
        if origin.kind == "custom":
            value = _parsed(call.arguments)
            given = value.get("input") if isinstance(value, dict) else None
            text = given if isinstance(given, str) else call.arguments
            return {"type": "custom_tool_call", "id": item_id, "call_id": call.id, "name": origin.name, "input": text}
        if origin.kind == "tool_search":
            value = _parsed(call.arguments)
            return {
                "type": "tool_search_call",
                "id": item_id,
                "call_id": call.id,
                "execution": "client",
                "arguments": value if isinstance(value, dict) else {},
                "status": status,
            }
        item: Json = {
            "type": "function_call",
            "id": item_id,
            "call_id": call.id,
            "name": origin.name,
            "arguments": call.arguments,
            "status": status,
        }
        if origin.namespace:
            item["namespace"] = origin.namespace
        return item
