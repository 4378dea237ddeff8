"""What of a caller's chat request goes upstream (SPEC, "Request policy").

Only the OpenAI chat-completions parameters below pass; anything else is dropped, above
all OpenRouter's routing and cost fields (`models`, `route`, `provider`, `plugins`,
`transforms`, `preset`, `usage`), so that no request reaches a model or a paid feature
other than the one priced. `max_tokens` is capped at the model's `max_output_tokens`
(and sent as the cap when the caller sent none), which bounds what a call can cost; a
stream always asks the upstream for usage (`stream_options.include_usage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The chat-completions request parameters of OpenAI's API reference that neither route
# nor buy anything beyond the priced model's tokens (so not `service_tier`, nor
# `web_search_options`, a paid search).
ALLOWED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "modalities",
        "audio",
        "prediction",
        "metadata",
        "store",
        "verbosity",
        "functions",
        "function_call",
        "safety_identifier",
        "prompt_cache_key",
    }
)


@dataclass(frozen=True, slots=True)
class UpstreamChat:
    body: dict[str, Any]  # what goes upstream
    max_tokens: int  # the effective completion-token cap of each choice
    n: int
    client_wants_usage: bool  # a stream's usage chunk is relayed only if the caller asked


def upstream_chat(body: dict[str, Any], *, upstream_id: str, max_output_tokens: int) -> UpstreamChat:
    """The body to send for a validated caller's `body` (types already checked)."""
    out = {name: value for name, value in body.items() if name in ALLOWED and value is not None}
    out["model"] = upstream_id
    n = out.get("n") or 1
    # `max_completion_tokens` is OpenAI's newer name; whichever the caller used is capped.
    field = "max_completion_tokens" if "max_completion_tokens" in out else "max_tokens"
    asked = out.pop("max_completion_tokens", None) or out.pop("max_tokens", None)
    cap = min(asked, max_output_tokens) if asked else max_output_tokens
    out[field] = cap
    wants_usage = False
    if out.get("stream"):
        options = out.get("stream_options") or {}
        wants_usage = options.get("include_usage") is True
        out["stream_options"] = {**options, "include_usage": True}
    else:
        out.pop("stream_options", None)
    return UpstreamChat(out, cap, n, wants_usage)
