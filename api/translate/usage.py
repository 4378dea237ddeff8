"""Token usage between the formats, normalised once (pure functions).

The platform bills from one shape, chat's (as OpenRouter reports it):

    {"prompt_tokens", "completion_tokens", "total_tokens",
     "prompt_tokens_details": {"cached_tokens", "cache_write_tokens"},
     "completion_tokens_details": {"reasoning_tokens"}}

where `prompt_tokens` INCLUDES the tokens read from and written to the cache, as OpenAI
counts them. Anthropic's `input_tokens` excludes both (they come apart as
`cache_read_input_tokens` and `cache_creation_input_tokens`); the Responses API's
`input_tokens` includes the cached ones, as chat does. `cost` (OpenRouter's charge, or
the platform's once billed) is kept wherever it is given.

    from_anthropic   Anthropic usage (a Message's, or message_start's and message_delta's)
    from_responses   a Response's usage
    to_anthropic     chat usage in Anthropic's terms
    to_responses     chat usage in the Responses API's terms
"""

from __future__ import annotations

from typing import Any


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _details(usage: dict[str, Any], name: str) -> dict[str, Any]:
    details = usage.get(name)
    return details if isinstance(details, dict) else {}


def chat_usage(prompt: int, completion: int, *, cached: int, cache_write: int, reasoning: int) -> dict[str, Any]:
    """The chat-shaped usage of these counts (`prompt` including the cached tokens)."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def from_anthropic(start: Any, delta: Any = None) -> dict[str, Any]:
    """Chat-shaped usage from Anthropic's: a Message's `usage`, or a stream's
    `message_start` usage (`start`) updated by its `message_delta` usage (`delta`), whose
    counts are cumulative and, where present, final."""
    merged: dict[str, Any] = dict(start) if isinstance(start, dict) else {}
    if isinstance(delta, dict):
        merged.update({name: value for name, value in delta.items() if value is not None})
    read = _int(merged.get("cache_read_input_tokens"))
    write = _int(merged.get("cache_creation_input_tokens"))
    out = chat_usage(
        _int(merged.get("input_tokens")) + read + write,
        _int(merged.get("output_tokens")),
        cached=read,
        cache_write=write,
        reasoning=_int(_details(merged, "output_tokens_details").get("thinking_tokens")),
    )
    if "cost" in merged:
        out["cost"] = merged["cost"]
    return out


def from_responses(usage: Any) -> dict[str, Any]:
    """Chat-shaped usage from a Response's `usage` (its `input_tokens` already include
    the cached ones)."""
    usage = usage if isinstance(usage, dict) else {}
    inputs = _details(usage, "input_tokens_details")
    out = chat_usage(
        _int(usage.get("input_tokens")),
        _int(usage.get("output_tokens")),
        cached=_int(inputs.get("cached_tokens")),
        cache_write=_int(inputs.get("cache_write_tokens")),
        reasoning=_int(_details(usage, "output_tokens_details").get("reasoning_tokens")),
    )
    for name in ("cost", "cost_details"):
        if name in usage:
            out[name] = usage[name]
    return out


def _chat_counts(usage: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """prompt (with cache), completion, cache read, cache write, reasoning."""
    prompt_details = _details(usage, "prompt_tokens_details")
    return (
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
        _int(prompt_details.get("cached_tokens")),
        _int(prompt_details.get("cache_write_tokens")),
        _int(_details(usage, "completion_tokens_details").get("reasoning_tokens")),
    )


def to_anthropic(usage: Any) -> dict[str, Any]:
    """Chat usage in Anthropic's terms: `input_tokens` without the cache's, which come
    apart, and the reasoning tokens of the output (each only when there are any); `cost`
    kept."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt, completion, read, write, reasoning = _chat_counts(usage)
    out: dict[str, Any] = {"input_tokens": max(prompt - read - write, 0), "output_tokens": completion}
    if write:
        out["cache_creation_input_tokens"] = write
    if read:
        out["cache_read_input_tokens"] = read
    if reasoning:
        out["output_tokens_details"] = {"thinking_tokens": reasoning}
    if "cost" in usage:
        out["cost"] = usage["cost"]
    return out


def to_responses(usage: Any) -> dict[str, Any] | None:
    """Chat usage in the Responses API's terms; `cost` kept."""
    if not isinstance(usage, dict):
        return None
    prompt, completion, read, write, reasoning = _chat_counts(usage)
    out: dict[str, Any] = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": _int(usage.get("total_tokens")) or prompt + completion,
    }
    if "cost" in usage:
        out["cost"] = usage["cost"]
    return out
