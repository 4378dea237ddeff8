"""The one place that turns work into credits: what a request reserves before its call,
and what it is charged once its usage is known (SPEC, "Metering" and "Bounds").

    mode           charge                                           reserved before the call
    per_request    fee × n                                          the same (refused past max_prompt_tokens)
    per_token      fee + prompt × prompt_price + completion ×       fee + prompt bound × the highest prompt-side
                   completion_price (prices per 1M tokens; cached     price + completion bound × completion_price
                   prompt tokens at cache_read/cache_write_price)
    upstream_cost  fee + upstream USD × CREDITS_PER_USD × markup    as per_token, from the reference
                   (reference prices × markup when none reported)     prices × markup

The prompt bound (`prompt_token_bound`) is the one bound of every format (chat, Responses,
Messages, embeddings, sent natively or translated): the bytes of the body sent upstream
(a byte-level tokenizer makes at most one token of a byte), except that an inline image
counts as the most any provider's tiling charges for its real pixel size
(store.image_tokens), and anything whose size the platform cannot see (a remote image or
file, audio, a PDF, video) adds the model's whole context length, which no prompt can
exceed. A `data:` string is an image only where the format puts an image.

All amounts are micro-credits (store.money); every product is exact and rounded up to the
micro-credit once, at the end. A charge is never above its reservation (`final_charge`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Protocol, TypeGuard

from . import image_tokens
from .money import MICRO, ceil_micro, usd_micro

log = logging.getLogger(__name__)
PER_REQUEST, PER_TOKEN, UPSTREAM_COST = "per_request", "per_token", "upstream_cost"
MODES = (PER_REQUEST, PER_TOKEN, UPSTREAM_COST)
TOKENS_PER_PRICE = 1_000_000  # prices are per 1M tokens
# What a relayed text is estimated at when no usage can be had (typical of BPE tokenizers).
BYTES_PER_TOKEN_ESTIMATE = 4
UNSEEN_ESTIMATE = 1_600  # a remote image's typical tokens, for `prompt_token_estimate`
# Content parts whose size the platform cannot see from the body (their bytes, if inline,
# still count as text): audio, files and PDFs, video, in each format's spelling.
_UNSEEN = frozenset(
    {"input_audio", "audio", "input_file", "file", "document", "video_url", "input_video", "video", "image_file"}
)
# No part of the body can be an image, file, audio or video part without one of these.
_MARKERS = (b"image", b"file", b"audio", b"video", b"document")


class Priced(Protocol):
    """What pricing reads of a registry entry (store.models.ModelEntry)."""

    pricing: str
    credit_cost: int  # the per-request fee, micro-credits
    prompt_price: int  # micro-credits per 1M prompt tokens
    completion_price: int  # micro-credits per 1M completion tokens
    markup: int  # micro (1_000_000 = ×1)
    cache_read_price: int | None  # micro-credits per 1M cached prompt tokens read (None: prompt_price)
    cache_write_price: int | None  # ... written to the cache


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int  # every prompt token, cached ones included (as OpenAI counts them)
    completion_tokens: int  # reasoning tokens included
    cost_usd: int | None = None  # the upstream's own cost, micro-USD, when it reported one
    cache_read_tokens: int = 0  # of prompt_tokens, read from the upstream's prompt cache
    cache_write_tokens: int = 0  # of prompt_tokens, written to it

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _token_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def usage_from(data: Any) -> Usage | None:
    """The token counts (and reported USD cost) of an OpenAI-shaped `usage` object, or None.
    Cached tokens come from `prompt_tokens_details` (`cached_tokens`, and OpenRouter's
    `cache_write_tokens`), counted within the prompt tokens, never beyond them."""
    if not isinstance(data, dict):
        return None
    prompt, completion = data.get("prompt_tokens"), data.get("completion_tokens")
    if not (_token_count(prompt) and _token_count(completion)):
        return None
    details = data.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read, write = details.get("cached_tokens"), details.get("cache_write_tokens")
    read = min(read, prompt) if _token_count(read) else 0
    write = min(write, prompt - read) if _token_count(write) else 0
    return Usage(prompt, completion, usd_micro(data.get("cost")), read, write)


# An upstream's reported cost past this many times the hold (plus one credit) is no cost a
# call can have: it is set aside (logged, unreported) rather than wreck the margin report
# or, in upstream_cost mode, price the call (the reference prices do).
PLAUSIBLE_COST_FACTOR = 100


def plausible(usage: Usage | None, *, held: int, credits_per_usd: Decimal) -> Usage | None:
    """`usage`, without its reported cost when that cost is absurd for a call that held `held`."""
    if usage is None or usage.cost_usd is None:
        return usage
    if Decimal(usage.cost_usd) * credits_per_usd <= PLAUSIBLE_COST_FACTOR * held + MICRO:
        return usage
    log.warning("an upstream reported %s USD for a call that held %s: set aside", usage.cost_usd / MICRO, held)
    return replace(usage, cost_usd=None)


def prompt_token_bound(content: bytes, body: Any = None, *, context_length: int) -> int:
    """An upper bound of the prompt tokens of `content`, the serialised body sent upstream
    (`body`, its parsed form, is walked for images, files and audio; see the module's
    docstring). At most one context length for all unseen parts together: the upstream
    refuses a prompt longer than that."""
    text, images, unseen = _measure(content, body, context_length)
    return text + images + (context_length if unseen else 0)


def prompt_token_estimate(content: bytes, body: Any = None, *, context_length: int) -> int:
    """A count of prompt tokens that errs high but stays near the truth (Anthropic's
    `count_tokens` where the provider cannot count): text at 3 bytes a token (English runs
    at about 4), inline images as in the bound, and each unseen part as a typical remote
    image (1,600). Never a basis for a hold: that is `prompt_token_bound`."""
    text, images, unseen = _measure(content, body, context_length)
    return -(-text // 3) + images + UNSEEN_ESTIMATE * unseen


def _measure(content: bytes, body: Any, context_length: int) -> tuple[int, int, int]:
    """The body's bytes that are text, its inline images' tokens, and how many parts it has
    whose size cannot be seen."""
    if body is None or not any(marker in content for marker in _MARKERS):
        return len(content), 0, 0
    text, images, unseen = len(content), 0, 0
    for kind, part in _parts(body):
        if kind in _UNSEEN:
            unseen += not _text_document(kind, part)
            continue
        url = _image_source(kind, part)
        if url is None:
            continue
        payload, prefix = _payload(kind, part, url)
        size = image_tokens.measure(payload) if payload is not None else None
        if payload is None or size is None:
            unseen += 1
            continue
        text -= len(payload) + prefix
        images += min(context_length, image_tokens.tokens(*size))
    return max(0, text), images, unseen


def _parts(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object with a string `type` in `node`, outermost first; an image, file,
    audio or video part's insides are not searched further."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            kind = item.get("type")
            if isinstance(kind, str):
                yield kind, item
                if kind in _UNSEEN or kind in ("image_url", "input_image", "image"):
                    continue
            stack.extend(value for value in item.values() if isinstance(value, (dict, list)))
        elif isinstance(item, list):
            stack.extend(value for value in item if isinstance(value, (dict, list)))


def _text_document(kind: str, part: dict[str, Any]) -> bool:
    """An Anthropic document whose source is plain text: its bytes are its bound."""
    source = part.get("source")
    return kind == "document" and isinstance(source, dict) and source.get("type") in ("text", "content")


def _image_source(kind: str, part: dict[str, Any]) -> Any:
    """Where an image part's picture is: a URL (data: or remote), an Anthropic source, or
    None when `part` is not an image part. Anything else there (a file id) is unseen."""
    if kind == "image_url":
        image = part.get("image_url")
        return image.get("url", False) if isinstance(image, dict) else image if image is not None else False
    if kind == "input_image":
        return part.get("image_url", False)
    if kind == "image":
        return part.get("source", False)
    return None


def _payload(kind: str, part: dict[str, Any], source: Any) -> tuple[str | None, int]:
    """The base64 payload of an inline image and how many more bytes of its string are not
    payload (`data:image/png;base64,`), or (None, 0) for anything that cannot be measured."""
    if kind == "image" and isinstance(source, dict):
        data = source.get("data")
        return (data, 0) if source.get("type") == "base64" and isinstance(data, str) else (None, 0)
    if isinstance(source, str):
        payload = image_tokens.data_url_payload(source)
        return (payload, len(source) - len(payload)) if payload is not None else (None, 0)
    return None, 0


def estimate(prompt_bytes: int, completion_bytes: int) -> Usage:
    """Usage estimated from sizes (bytes, never characters), for a request whose usage never arrived."""
    per = BYTES_PER_TOKEN_ESTIMATE
    return Usage(-(-prompt_bytes // per), -(-completion_bytes // per))


def _prompt_side(entry: Priced) -> tuple[int, int, int]:
    """The prices of a plain, a cache-read and a cache-write prompt token."""
    read = entry.cache_read_price if entry.cache_read_price is not None else entry.prompt_price
    write = entry.cache_write_price if entry.cache_write_price is not None else entry.prompt_price
    return entry.prompt_price, read, write


def _priced(entry: Priced, amount: int) -> Decimal:
    """`amount` micro-credits·tokens per 1M tokens, marked up for upstream_cost's reference prices."""
    value = Decimal(amount) / TOKENS_PER_PRICE
    return value * entry.markup / MICRO if entry.pricing == UPSTREAM_COST else value


def reservation(entry: Priced, *, prompt_bound: int, max_tokens: int, n: int = 1, extra_completion: int = 0) -> int:
    """What admission debits: the most this request can cost. Every prompt token is held at
    the highest prompt-side price (a cache write costs more than a plain token); the
    completion bound is `max_tokens` per choice plus `extra_completion` (a predicted
    output's tokens, which are billed as completion tokens when rejected)."""
    if entry.pricing == PER_REQUEST:
        return entry.credit_cost * n
    prompt_price = max(_prompt_side(entry))
    completion = max_tokens * n + extra_completion
    return entry.credit_cost + ceil_micro(
        _priced(entry, prompt_bound * prompt_price + completion * entry.completion_price)
    )


def smallest_hold(entry: Priced) -> int:
    """The least any request to `entry` holds: its fee and one completion token. (Nothing
    smaller bounds a prompt from a body's length alone: the body may be one inline image.)"""
    return reservation(entry, prompt_bound=0, max_tokens=1)


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
        plain, read, write = _prompt_side(entry)
        fresh = usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens
        variable = _priced(
            entry,
            fresh * plain
            + usage.cache_read_tokens * read
            + usage.cache_write_tokens * write
            + usage.completion_tokens * entry.completion_price,
        )
    return entry.credit_cost + ceil_micro(variable)


RESOLUTIONS = ("1K", "2K", "4K")
# A tier's pixels over 1K's (its long side 2x, 4x): the price of a tier without its own.
_PIXELS_OVER_1K = {"1K": 1, "2K": 4, "4K": 16}


def resolution_of(size: str | None) -> str:
    """`"2048x1152"` -> `"2K"`: the tier of an image size by its long side (1K up to 1,024 px)."""
    if not size:
        return "1K"
    longest = max(int(side) for side in size.lower().split("x"))
    return "1K" if longest <= 1024 else "2K" if longest <= 2048 else "4K"


def image_unit_cost(entry: Any, size: str | None) -> int:
    """The price of one image of `size`: `credit_cost` at 1K; at a larger tier its own
    price (`resolution_prices`), else `credit_cost` times its pixels over 1K's (4x at 2K,
    16x at 4K), never a 1K price for a 4K image."""
    tier = resolution_of(size)
    if tier == "1K":
        return entry.credit_cost
    prices = entry.resolution_prices or {}
    return prices[tier] if tier in prices else entry.credit_cost * _PIXELS_OVER_1K[tier]


def final_charge(reserved: int, charged: int) -> int:
    """The charge that stands: what the work cost, never more than was reserved."""
    return max(0, min(reserved, charged))


def needs_usage(entry: Priced) -> bool:
    return entry.pricing != PER_REQUEST


def typical_cost(entry: Priced, *, prompt_tokens: int = 1_000, completion_tokens: int = 500) -> int:
    """What a typical call (1k tokens in, 500 out) costs: the admin's preview."""
    return charge(entry, Usage(prompt_tokens, completion_tokens)) or 0
