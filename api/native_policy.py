"""What of a Messages or Responses request goes upstream when the provider speaks that
format natively (SPEC, "Agents"): the chat request policy's rule, in each format's terms.

    model       the registry's upstream id
    caps        Messages' `max_tokens`, Responses' `max_output_tokens`: at most the model's
                `max_output_tokens` (the cap when absent); Anthropic's
                `thinking.budget_tokens` kept below `max_tokens` (thinking dropped when
                the cap leaves no room for the least budget Anthropic takes, 1,024)
    hosted      tools the provider runs and bills beside the tokens (web search and fetch,
                code execution or interpreter, file search, MCP servers and connectors,
                image generation) are dropped, never refused, so an agent still runs;
                a `tool_choice` naming one becomes `auto`
    dropped     routing and cost fields (OpenRouter's `models`, `route`, `provider`,
                `plugins`, `transforms`, `preset`, `usage`; `service_tier`) and any field
                not listed; Responses' stored state (`previous_response_id`,
                `conversation`, `prompt`, `background`) is refused: the platform keeps
                none and would silently lose the conversation
    metadata    Messages: `user_id` only; Responses: OpenAI's 16 short string pairs

Everything else passes byte for byte in meaning: tools, tool results, thinking blocks
and their signatures, `cache_control` (on blocks, and Messages' top-level one), images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .chat_policy import check_metadata
from .errors import ApiError

MESSAGES_ALLOWED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "context_management",
        "output_config",
        "cache_control",  # Anthropic's automatic caching (a breakpoint on the last block), priced as cache writes
    }
)
RESPONSES_ALLOWED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "temperature",
        "top_p",
        "top_logprobs",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_tool_calls",
        "reasoning",
        "text",
        "stream",
        "stream_options",
        "store",
        "include",
        "prompt_cache_key",
        "safety_identifier",
        "user",
        "metadata",
        "truncation",
    }
)
RESPONSES_REFUSED = {
    "previous_response_id": "conversation state is not kept: send the whole conversation as `input`",
    "conversation": "conversation state is not kept: send the whole conversation as `input`",
    "prompt": "stored prompts are not supported",
    "background": "background responses are not supported",
}
# Tool types the provider runs itself and bills beyond the tokens (prefixes of Anthropic's
# dated server-tool types, and OpenAI's hosted tools).
ANTHROPIC_HOSTED = ("web_search_", "web_fetch_", "code_execution_", "mcp_toolset")
OPENAI_HOSTED = frozenset(
    {"web_search", "web_search_preview", "file_search", "code_interpreter", "mcp", "image_generation"}
)
OPENAI_HOSTED_PREFIXES = ("web_search_preview_",)
MIN_THINKING_BUDGET = 1_024


@dataclass(frozen=True, slots=True)
class NativeBody:
    body: dict[str, Any]  # what goes upstream
    max_tokens: int  # the effective completion cap
    dropped: tuple[str, ...]  # the names of what was dropped (fields and tools), for the log


def messages_body(body: dict[str, Any], *, upstream_id: str, max_output_tokens: int) -> NativeBody:
    """The Messages body to send for a validated request `body`."""
    out = {name: value for name, value in body.items() if name in MESSAGES_ALLOWED and value is not None}
    dropped = [name for name in body if name not in MESSAGES_ALLOWED]
    out["model"] = upstream_id
    cap = min(out.get("max_tokens") or max_output_tokens, max_output_tokens)
    out["max_tokens"] = cap
    thinking = out.get("thinking")
    if isinstance(thinking, dict) and isinstance(thinking.get("budget_tokens"), int):
        budget = min(thinking["budget_tokens"], cap - 1)
        if budget < MIN_THINKING_BUDGET:
            del out["thinking"]
            dropped.append("thinking")
        else:
            out["thinking"] = {**thinking, "budget_tokens": budget}
    metadata = out.get("metadata")
    if isinstance(metadata, dict):
        user = metadata.get("user_id")
        out["metadata"] = {"user_id": user} if isinstance(user, str) else {}
    _drop_tools(out, dropped, _anthropic_hosted, choice_name=lambda c: c.get("name"), auto={"type": "auto"})
    return NativeBody(out, cap, tuple(dropped))


def responses_body(body: dict[str, Any], *, upstream_id: str, max_output_tokens: int) -> NativeBody:
    """The Responses body to send for a validated request `body`."""
    for name, why in RESPONSES_REFUSED.items():
        if body.get(name):
            raise ApiError("invalid_request", f"`{name}`: {why}")
    check_metadata(body.get("metadata"))
    out = {name: value for name, value in body.items() if name in RESPONSES_ALLOWED and value is not None}
    dropped = [name for name in body if name not in RESPONSES_ALLOWED]
    out["model"] = upstream_id
    cap = min(out.get("max_output_tokens") or max_output_tokens, max_output_tokens)
    out["max_output_tokens"] = cap
    _drop_tools(out, dropped, _openai_hosted, choice_name=lambda c: c.get("name") or c.get("type"), auto="auto")
    return NativeBody(out, cap, tuple(dropped))


def _anthropic_hosted(tool: Any) -> bool:
    kind = tool.get("type") if isinstance(tool, dict) else None
    return isinstance(kind, str) and kind.startswith(ANTHROPIC_HOSTED)


def _openai_hosted(tool: Any) -> bool:
    kind = tool.get("type") if isinstance(tool, dict) else None
    return isinstance(kind, str) and (kind in OPENAI_HOSTED or kind.startswith(OPENAI_HOSTED_PREFIXES))


def _drop_tools(
    out: dict[str, Any],
    dropped: list[str],
    hosted: Callable[[Any], bool],
    *,
    choice_name: Callable[[dict[str, Any]], Any],
    auto: Any,
) -> None:
    """Drop the hosted tools (noted in `dropped`); a `tool_choice` that named one becomes `auto`."""
    tools = out.get("tools")
    if not isinstance(tools, list):
        return
    kept = [tool for tool in tools if not hosted(tool)]
    gone = [tool for tool in tools if hosted(tool)]
    if not gone:
        return
    dropped.extend(f"tools[{tool.get('type')}]" for tool in gone)
    if kept:
        out["tools"] = kept
    else:
        del out["tools"]
    choice = out.get("tool_choice")
    names = {tool.get("name") or tool.get("type") for tool in gone}
    if isinstance(choice, dict) and choice_name(choice) in names:
        out["tool_choice"] = auto
    if not kept:
        out.pop("tool_choice", None)
