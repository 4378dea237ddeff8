"""The one place that turns work into credits: each mode's charge and reservation, to the
last 10^-6 credit."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from store import pricing
from store.money import MICRO, parse_credits
from store.pricing import Usage


@dataclass
class Entry:
    pricing: str = "per_request"
    credit_cost: int = 0
    prompt_price: int = 0
    completion_price: int = 0
    markup: int = MICRO


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


def test_prompt_bound_counts_bytes_and_a_fixed_allowance_per_inline_image():
    body = (
        b'{"messages":[{"content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,'
        + b"A" * 50_000
        + b'"}}]}]}'
    )
    data_url_len = len(b'"data:image/png;base64,' + b"A" * 50_000 + b'"')
    assert pricing.prompt_token_bound(body) == len(body) - data_url_len + pricing.MEDIA_TOKENS
    assert pricing.prompt_token_bound(b'{"a":"hi"}') == 10


def test_estimate_is_four_bytes_a_token_rounded_up():
    assert pricing.estimate(9, 4) == Usage(3, 1)
