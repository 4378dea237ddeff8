"""What of a caller's chat request goes upstream (SPEC, "Request policy").

Only the OpenAI chat-completions parameters below pass; anything else is dropped, above
all OpenRouter's routing and cost fields (`models`, `route`, `provider`, `plugins`,
`transforms`, `preset`, `usage`), so that no request reaches a model or a paid feature
other than the one priced. Every completion-length field (`max_tokens`,
`max_completion_tokens`) is capped at the model's `max_output_tokens` (and `max_tokens`
sent as the cap when the caller sent none), which bounds what a call can cost; audio and
image output (`modalities`, `audio`), billed at other rates, are refused; `metadata`
must be OpenAI's flat map of short strings; a stream always asks the upstream for usage
(`stream_options.include_usage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ApiError

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
        "reasoning",
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


COMPLETION_FIELDS = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True, slots=True)
class UpstreamChat:
    body: dict[str, Any]  # what goes upstream
    max_tokens: int  # the effective completion-token cap of each choice
    n: int
    client_wants_usage: bool  # a stream's usage chunk is relayed only if the caller asked
    prediction_tokens: int = 0  # a predicted output is billed as completion tokens besides the cap

    @property
    def completion_bound(self) -> int:
        """The most completion tokens the upstream can bill, over every choice."""
        return self.max_tokens * self.n + self.prediction_tokens


# OpenAI's limits on `metadata`, which is stored and echoed back (Responses): at most 16
# string pairs, keys up to 64 characters and values up to 512.
METADATA_PAIRS, METADATA_KEY, METADATA_VALUE = 16, 64, 512


def check_metadata(metadata: Any, where: str = "metadata") -> None:
    """Refuse (400) a `metadata` that is not OpenAI's flat map of short strings."""
    if metadata is None:
        return
    if not isinstance(metadata, dict) or len(metadata) > METADATA_PAIRS:
        raise ApiError("invalid_request", f"`{where}` must be an object of at most {METADATA_PAIRS} string pairs")
    for name, value in metadata.items():
        if len(name) > METADATA_KEY or not isinstance(value, str) or len(value) > METADATA_VALUE:
            raise ApiError(
                "invalid_request",
                f"`{where}` keys must be at most {METADATA_KEY} characters and values strings of at most "
                f"{METADATA_VALUE}",
            )


def _refuse_unpriced_output(body: dict[str, Any]) -> None:
    """Audio or image output is billed at other rates than text: refused, never priced as text."""
    modalities = body.get("modalities")
    if modalities is not None and (not isinstance(modalities, list) or any(m != "text" for m in modalities)):
        raise ApiError("invalid_request", "`modalities`: only text output is offered")
    if body.get("audio") is not None:
        raise ApiError("invalid_request", "`audio`: audio output is not offered")


def _prediction_tokens(prediction: Any) -> int:
    """A bound of the tokens a predicted output can add to the bill: its bytes (the tokens
    of it the model rejects are billed as completion tokens)."""
    if prediction is None:
        return 0
    return len(orjson.dumps(prediction))


def upstream_chat(body: dict[str, Any], *, upstream_id: str, max_output_tokens: int) -> UpstreamChat:
    """The body to send for a validated caller's `body` (types already checked)."""
    _refuse_unpriced_output(body)
    check_metadata(body.get("metadata"))
    out = {name: value for name, value in body.items() if name in ALLOWED and value is not None}
    out["model"] = upstream_id
    n = out.get("n") or 1
    # Every completion-length field the caller sent is capped (an upstream reads one or the
    # other: `max_completion_tokens` is OpenAI's newer name); none sent, the cap is.
    fields = [name for name in COMPLETION_FIELDS if name in out] or ["max_tokens"]
    for name in fields:
        out[name] = min(out.get(name) or max_output_tokens, max_output_tokens)
    cap = max(out[name] for name in fields)
    reasoning = out.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("max_tokens"), int):
        # OpenRouter's reasoning budget (Anthropic's `budget_tokens`) stays below the cap
        out["reasoning"] = {**reasoning, "max_tokens": max(1, min(reasoning["max_tokens"], cap - 1))}
    wants_usage = False
    if out.get("stream"):
        options = out.get("stream_options") or {}
        wants_usage = options.get("include_usage") is True
        out["stream_options"] = {**options, "include_usage": True}
    else:
        out.pop("stream_options", None)
    return UpstreamChat(out, cap, n, wants_usage, _prediction_tokens(out.get("prediction")))
