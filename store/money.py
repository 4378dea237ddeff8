"""Credits as exact decimals: integers of 10⁻⁶ credit ("micro-credits") everywhere they
are stored or computed, decimal text wherever a person or a client reads them.

    parse_credits("2.5")   -> 2_500_000      (InvalidInput past 6 places or out of range)
    format_credits(46_000) -> "0.046"
    json_credits(3_000_000) serialises as the JSON number 3, 2_500_000 as 2.5

No float ever holds an amount of money.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

import orjson

from .errors import InvalidInput

MICRO = 1_000_000
PLACES = 6


def parse_credits(value: str | int | Decimal, *, what: str = "amount") -> int:
    """Exact micro-credits for a decimal number of credits (`"2.5"`, `3`, `"-0.000001"`)."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a number")
    if isinstance(value, int):
        return value * MICRO
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidInput(f"{what} must be a number such as 2.5") from None
    if not number.is_finite():
        raise InvalidInput(f"{what} must be a finite number")
    micro = number * MICRO
    if micro != micro.to_integral_value():
        raise InvalidInput(f"{what} has more than {PLACES} decimal places")
    if abs(micro) > 10**21:
        raise InvalidInput(f"{what} is out of range")
    return int(micro)


def format_credits(micro: int) -> str:
    """`2_500_000` -> `"2.5"`, `3_000_000` -> `"3"`, `-46_000` -> `"-0.046"`."""
    sign = "-" if micro < 0 else ""
    whole, fraction = divmod(abs(micro), MICRO)
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:06d}".rstrip("0")


def json_credits(micro: int) -> orjson.Fragment:
    """The exact JSON number (`3`, `0.046`): the decimal text itself, never a float."""
    return orjson.Fragment(format_credits(micro).encode())


def ceil_micro(value: Decimal) -> int:
    """Whole micro-credits for an exact amount, rounded up (the platform never rounds a
    charge in its own favour by more than one micro-credit, and never against itself)."""
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def usd_micro(value: object) -> int | None:
    """An upstream's reported USD cost (a JSON number or numeric string) as micro-USD,
    rounded up; None if absent or not a non-negative number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0 or number > 10**9:
        return None
    return ceil_micro(number * MICRO)
