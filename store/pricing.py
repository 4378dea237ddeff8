"""The one place that turns work into credits: what a request reserves before its call,
and what it is charged once its usage is known (SPEC, "Metering").

    mode           charge                                           reserved before the call
    per_request    fee × n                                          the same
    per_token      fee + prompt × prompt_price + completion ×       fee + prompt bound × prompt_price
                   completion_price (prices per 1M tokens)            + max_tokens × n × completion_price
    upstream_cost  fee + upstream USD × CREDITS_PER_USD × markup    as per_token, from the reference
                   (reference prices × markup when none reported)     prices × markup

All amounts are micro-credits (store.money); every product is exact and rounded up to the
micro-credit once, at the end. A charge is never above its reservation (`final_charge`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, TypeGuard

from .money import MICRO, ceil_micro, usd_micro

PER_REQUEST, PER_TOKEN, UPSTREAM_COST = "per_request", "per_token", "upstream_cost"
MODES = (PER_REQUEST, PER_TOKEN, UPSTREAM_COST)
TOKENS_PER_PRICE = 1_000_000  # prices are per 1M tokens
# A prompt is bounded by its bytes (a byte-level tokenizer makes at most one token of a
# byte), except inline media (base64 data URLs), each counted as this many tokens.
MEDIA_TOKENS = 2_000
_DATA_URL = re.compile(rb'"data:[^"]*"')
# What a relayed text is estimated at when no usage can be had (typical of BPE tokenizers).
BYTES_PER_TOKEN_ESTIMATE = 4


class Priced(Protocol):
    """What pricing reads of a registry entry (store.models.ModelEntry)."""

    pricing: str
    credit_cost: int  # the per-request fee, micro-credits
    prompt_price: int  # micro-credits per 1M prompt tokens
    completion_price: int  # micro-credits per 1M completion tokens
    markup: int  # micro (1_000_000 = ×1)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cost_usd: int | None = None  # the upstream's own cost, micro-USD, when it reported one

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _token_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def usage_from(data: Any) -> Usage | None:
    """The token counts (and reported USD cost) of an OpenAI-shaped `usage` object, or None."""
    if not isinstance(data, dict):
        return None
    prompt, completion = data.get("prompt_tokens"), data.get("completion_tokens")
    if not (_token_count(prompt) and _token_count(completion)):
        return None
    return Usage(prompt, completion, usd_micro(data.get("cost")))


def prompt_token_bound(upstream_body: bytes) -> int:
    """An upper bound of a chat request's prompt tokens, from the body sent upstream."""
    media = _DATA_URL.findall(upstream_body)
    return len(upstream_body) - sum(map(len, media)) + MEDIA_TOKENS * len(media)


def estimate(prompt_bytes: int, completion_bytes: int) -> Usage:
    """Usage estimated from sizes, for a request whose usage never arrived."""
    per = BYTES_PER_TOKEN_ESTIMATE
    return Usage(-(-prompt_bytes // per), -(-completion_bytes // per))


def _tokens(entry: Priced, prompt: int, completion: int, *, marked_up: bool) -> Decimal:
    amount = Decimal(prompt * entry.prompt_price + completion * entry.completion_price) / TOKENS_PER_PRICE
    return amount * entry.markup / MICRO if marked_up else amount


def reservation(entry: Priced, *, prompt_bound: int, max_tokens: int, n: int = 1) -> int:
    """What admission debits: the most this request can cost."""
    if entry.pricing == PER_REQUEST:
        return entry.credit_cost * n
    variable = _tokens(entry, prompt_bound, max_tokens * n, marked_up=entry.pricing == UPSTREAM_COST)
    return entry.credit_cost + ceil_micro(variable)


def charge(entry: Priced, usage: Usage | None, *, n: int = 1, credits_per_usd: Decimal = Decimal(100)) -> int | None:
    """What the work cost, before the cap at the reservation; None when the mode needs
    usage and there is none (per_request never does)."""
    if entry.pricing == PER_REQUEST:
        return entry.credit_cost * n
    if usage is None:
        return None
    if entry.pricing == UPSTREAM_COST and usage.cost_usd is not None:
        variable = Decimal(usage.cost_usd) * credits_per_usd * entry.markup / MICRO
    else:
        variable = _tokens(
            entry, usage.prompt_tokens, usage.completion_tokens, marked_up=entry.pricing == UPSTREAM_COST
        )
    return entry.credit_cost + ceil_micro(variable)


def final_charge(reserved: int, charged: int) -> int:
    """The charge that stands: what the work cost, never more than was reserved."""
    return max(0, min(reserved, charged))


def needs_usage(entry: Priced) -> bool:
    return entry.pricing != PER_REQUEST


def typical_cost(entry: Priced, *, prompt_tokens: int = 1_000, completion_tokens: int = 500) -> int:
    """What a typical call (1k tokens in, 500 out) costs: the admin's preview."""
    return charge(entry, Usage(prompt_tokens, completion_tokens)) or 0
