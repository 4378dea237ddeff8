"""Exact decimal credits: parsed, formatted and serialised without a float anywhere."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from store.errors import InvalidInput
from store.money import MICRO, format_credits, json_credits, parse_credits, usd_micro


@pytest.mark.parametrize(
    "text,micro",
    [
        ("3", 3 * MICRO),
        ("2.5", 2_500_000),
        ("0.046", 46_000),
        ("-0.000001", -1),
        (" 7 ", 7 * MICRO),
        ("1e3", 1000 * MICRO),
        (Decimal("0.1"), 100_000),
        (4, 4 * MICRO),
    ],
)
def test_parse_credits_is_exact(text, micro):
    assert parse_credits(text) == micro


@pytest.mark.parametrize("text", ["0.0000001", "abc", "", "nan", "inf", "1e30", True])
def test_parse_credits_refuses_what_is_not_an_exact_amount(text):
    with pytest.raises(InvalidInput):
        parse_credits(text)


@pytest.mark.parametrize(
    "micro,text",
    [
        (3 * MICRO, "3"),
        (2_500_000, "2.5"),
        (46_000, "0.046"),
        (1, "0.000001"),
        (-46_000, "-0.046"),
        (0, "0"),
    ],
)
def test_format_and_json_are_the_exact_decimal(micro, text):
    assert format_credits(micro) == text
    assert orjson.dumps({"c": json_credits(micro)}) == b'{"c":' + text.encode() + b"}"


def test_usd_cost_rounds_up_to_the_micro_dollar_and_refuses_junk():
    assert usd_micro(0.0012345) == 1235
    assert usd_micro("0.5") == 500_000
    assert usd_micro(0) == 0
    for junk in (None, -1, "x", True, [1], float("nan")):
        assert usd_micro(junk) is None
