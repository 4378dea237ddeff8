"""The one place that turns work into credits: each mode's charge and reservation, to the
last 10^-6 credit."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from decimal import Decimal

import orjson
import pytest
from PIL import Image

from store import image_tokens, pricing
from store.money import MICRO, parse_credits
from store.pricing import Usage


@dataclass
class Entry:
    pricing: str = "per_request"
    credit_cost: int = 0
    prompt_price: int = 0
    completion_price: int = 0
    markup: int = MICRO
    cache_read_price: int | None = None
    cache_write_price: int | None = None


GPT = Entry(
    "per_token",
    credit_cost=parse_credits("0.01"),
    prompt_price=parse_credits("1.25"),
    completion_price=parse_credits("10"),
)


def test_per_request_charges_the_fee_times_n_whatever_the_usage():
    entry = Entry(credit_cost=3 * MICRO)
    assert pricing.reservation(entry, prompt_bound=10**6, max_tokens=10**6, n=2) == 6 * MICRO
    assert pricing.charge(entry, None, n=2) == 6 * MICRO
    assert pricing.charge(entry, Usage(10**6, 10**6), n=1) == 3 * MICRO


def test_per_token_charge_is_the_usage_arithmetic_exactly():
    # 0.01 + 1234 x 1.25/1M + 567 x 10/1M = 0.01 + 0.0015425 + 0.00567 = 0.0172125 -> up to 0.017213
    assert pricing.charge(GPT, Usage(1234, 567)) == 17_213
    assert pricing.charge(GPT, None) is None


def test_per_token_reservation_bounds_prompt_and_every_choice():
    # 0.01 + 2000 x 1.25/1M + 100 x 3 x 10/1M = 0.01 + 0.0025 + 0.003 = 0.0155
    assert pricing.reservation(GPT, prompt_bound=2000, max_tokens=100, n=3) == 15_500


def test_upstream_cost_uses_the_reported_usd_times_rate_times_markup():
    entry = Entry(
        "upstream_cost",
        credit_cost=0,
        prompt_price=parse_credits("1"),
        completion_price=parse_credits("2"),
        markup=parse_credits("1.2"),
    )
    # $0.0012345 -> 1235 micro-USD x 100 credits/USD x 1.2 = 148_200 micro-credits
    assert pricing.charge(entry, Usage(10, 10, cost_usd=1235), credits_per_usd=Decimal(100)) == 148_200
    # no reported cost: the reference prices with the markup: (10x1 + 10x2)/1M x 1.2 = 0.000036
    assert pricing.charge(entry, Usage(10, 10)) == 36
    # reserved from the reference prices with the markup: (1000x1 + 500x2)/1M x 1.2 = 0.0024
    assert pricing.reservation(entry, prompt_bound=1000, max_tokens=500) == 2_400


def test_final_charge_never_exceeds_the_hold():
    assert pricing.final_charge(100, 250) == 100
    assert pricing.final_charge(100, 40) == 40


def test_estimate_is_four_bytes_a_token_rounded_up():
    assert pricing.estimate(9, 4) == Usage(3, 1)


def test_estimate_counts_bytes_not_characters():
    # "héllo wörld" is 11 characters and 13 bytes: the estimate reads bytes
    assert pricing.estimate(0, len("héllo wörld".encode())) == Usage(0, 4)


# ------------------------------------------------------------------ cached prompt prices

CACHED = Entry(
    "per_token",
    credit_cost=0,
    prompt_price=parse_credits("3"),
    completion_price=parse_credits("15"),
    cache_read_price=parse_credits("0.3"),
    cache_write_price=parse_credits("3.75"),
)


def test_usage_from_reads_cached_and_cache_written_tokens_within_the_prompt():
    usage = {
        "prompt_tokens": 10_000,
        "completion_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 8_000, "cache_write_tokens": 1_500},
    }
    assert pricing.usage_from(usage) == Usage(10_000, 100, None, 8_000, 1_500)
    # never more cached than prompted
    usage["prompt_tokens_details"] = {"cached_tokens": 20_000, "cache_write_tokens": 5}
    assert pricing.usage_from(usage) == Usage(10_000, 100, None, 10_000, 0)


def test_cached_tokens_are_charged_at_their_own_prices():
    # 500 fresh x 3 + 8,000 read x 0.3 + 1,500 written x 3.75 + 100 x 15, per 1M
    # = 0.0015 + 0.0024 + 0.005625 + 0.0015 = 0.011025
    assert pricing.charge(CACHED, Usage(10_000, 100, None, 8_000, 1_500)) == 11_025
    # unset cache prices follow the prompt price: 10,000 x 3 + 100 x 15 = 0.0315
    assert (
        pricing.charge(
            GPT_LIKE := Entry("per_token", prompt_price=3 * MICRO, completion_price=15 * MICRO),
            Usage(10_000, 100, None, 8_000, 1_500),
        )
        == 31_500
    )
    assert GPT_LIKE.cache_read_price is None


def test_reservation_holds_every_prompt_token_at_the_highest_prompt_side_price():
    # 1,000 x 3.75 (a cache write costs most) + 100 x 15 = 0.00375 + 0.0015
    assert pricing.reservation(CACHED, prompt_bound=1_000, max_tokens=100) == 5_250


def test_reservation_adds_a_predicted_outputs_tokens_to_the_completion_bound():
    # 0.01 + 0 + (100 x 2 + 50) x 10 / 1M = 0.01 + 0.0025
    assert pricing.reservation(GPT, prompt_bound=0, max_tokens=100, n=2, extra_completion=50) == 12_500


def test_smallest_hold_is_the_fee_and_one_completion_token():
    assert pricing.smallest_hold(GPT) == 10_010  # 0.01 + 10/1M
    assert pricing.smallest_hold(Entry(credit_cost=3 * MICRO)) == 3 * MICRO


# ------------------------------------------------------------------ the prompt bound

CONTEXT = 400_000


def png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def jpeg(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 10)).save(buffer, "JPEG", icc_profile=b"\x00" * 100_000)
    return base64.b64encode(buffer.getvalue()).decode()


def bound(body: dict) -> int:
    return pricing.prompt_token_bound(orjson.dumps(body), body, context_length=CONTEXT)


def chat_with(*parts: dict) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": list(parts)}]}


def test_text_is_bounded_by_its_bytes():
    body = {"model": "m", "messages": [{"role": "user", "content": "hé" * 10}]}
    assert bound(body) == len(orjson.dumps(body))
    assert pricing.prompt_token_bound(b'{"a":"hi"}', context_length=CONTEXT) == 10


def test_a_data_string_in_a_text_part_is_text():
    text = "data:image/png;base64," + png(64, 64)
    body = chat_with({"type": "text", "text": text})
    assert bound(body) == len(orjson.dumps(body))


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        # OpenAI's patches at detail original dominate large images: min(patches, 10,000)
        (4000, 3000, 10_000),
        # 1024 x 1024: patches 1,024 x 2.46 = 2,519.04 -> 2,520; Anthropic 1,398; tiles 765; Google 2,240
        (1024, 1024, 2_520),
        # 64 x 64: Google's flat 2,240 is the most
        (64, 64, 2_240),
        # 2576 x 2576 fits Anthropic's long edge: 6,635,776 / 750 -> 8,848
        (2576, 2576, 8_848),
    ],
)
def test_an_inline_image_counts_the_most_any_tiling_charges_for_its_pixels(width, height, expected):
    assert image_tokens.tokens(width, height) == expected
    payload = png(width, height)
    url = "data:image/png;base64," + payload
    body = chat_with({"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}})
    assert bound(body) == len(orjson.dumps(body)) - len(url) + expected


def test_every_formats_inline_image_is_measured():
    payload = png(1024, 1024)
    url = "data:image/png;base64," + payload
    responses = {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": url}]}]}
    assert bound(responses) == len(orjson.dumps(responses)) - len(url) + 2_520
    source = {"type": "base64", "media_type": "image/png", "data": payload}
    messages = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": source}]}]}
    assert bound(messages) == len(orjson.dumps(messages)) - len(payload) + 2_520
    # an image inside an Anthropic tool result is measured too
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "image", "source": source}]}
    nested = {"model": "m", "messages": [{"role": "user", "content": [result]}]}
    assert bound(nested) == len(orjson.dumps(nested)) - len(payload) + 2_520


def test_a_jpeg_whose_frame_header_comes_after_a_large_exif_block_is_measured():
    payload = jpeg(640, 480)  # 100 KB of ICC profile before the SOF marker: past the first 64 KiB read
    assert image_tokens.measure(payload) == (640, 480)


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,not-an-image"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ],
    ids=["remote image", "undecodable image", "pdf file", "audio"],
)
def test_what_cannot_be_measured_adds_the_context_length_once(part):
    body = chat_with(part, part)
    assert bound(body) == len(orjson.dumps(body)) + CONTEXT


def test_remote_parts_of_every_format_are_unseen():
    responses = {
        "model": "m",
        "input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x.test/a.pdf"}]}],
    }
    assert bound(responses) == len(orjson.dumps(responses)) + CONTEXT
    doc = {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}
    messages = {"model": "m", "messages": [{"role": "user", "content": [doc]}]}
    assert bound(messages) == len(orjson.dumps(messages)) + CONTEXT
    text_doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hello"}}
    plain = {"model": "m", "messages": [{"role": "user", "content": [text_doc]}]}
    assert bound(plain) == len(orjson.dumps(plain))


def test_tool_schemas_are_inside_the_bound():
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "description": "x" * 5000}}}
    body = {**chat_with({"type": "text", "text": "hi"}), "tools": [tool]}
    assert bound(body) == len(orjson.dumps(body)) > 5000


def test_an_absurd_upstream_cost_is_set_aside_and_a_plausible_one_kept():
    # held 0.02 credits: 100 x 0.02 + 1 credit = 3 credits = $0.03 at 100 credits per USD
    sane = Usage(10, 10, cost_usd=30_000)  # $0.03
    assert pricing.plausible(sane, held=20_000, credits_per_usd=Decimal(100)) == sane
    absurd = Usage(10, 10, cost_usd=10**15)  # $1e9
    assert pricing.plausible(absurd, held=20_000, credits_per_usd=Decimal(100)) == Usage(10, 10)
    assert pricing.plausible(None, held=1, credits_per_usd=Decimal(100)) is None
