"""The credit packs on sale through Stripe Checkout: `CREDIT_PACKS`, parsed once.

    CREDIT_PACKS=10:5.00,50:20.00   ->  10 credits for 5.00, 50 credits for 20.00 (STRIPE_CURRENCY)

A pack's id is its credits as text (`"10"`, `"2.5"`): what the Credits page posts. The price
is kept in the currency's smallest unit (cents), as Stripe takes it. Pure: no I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .errors import StoreError
from .money import MICRO, format_credits, parse_credits

MAX_PACK_CREDITS = 1_000_000_000 * MICRO
MAX_PRICE_CENTS = 99_999_999  # Stripe's largest amount for a Checkout line item


@dataclass(frozen=True, slots=True)
class CreditPack:
    id: str
    credits: int  # micro-credits
    price: int  # cents

    @property
    def price_text(self) -> str:
        return f"{self.price // 100}.{self.price % 100:02d}"

    @property
    def label(self) -> str:
        return f"{format_credits(self.credits)} credits"


@functools.cache
def parse_packs(text: str) -> tuple[CreditPack, ...]:
    """The packs of a CREDIT_PACKS value; ValueError with the reason for a bad one."""
    packs: list[CreditPack] = []
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        credits_text, sep, price_text = item.partition(":")
        if not sep:
            raise ValueError(f"CREDIT_PACKS: {item!r} is not credits:price (e.g. 10:5.00)")
        try:
            credits = parse_credits(credits_text, what="credits")
        except StoreError as exc:
            raise ValueError(f"CREDIT_PACKS: {item!r}: {exc}") from None
        if not 0 < credits <= MAX_PACK_CREDITS:
            raise ValueError(f"CREDIT_PACKS: {item!r}: credits must be more than 0")
        try:
            price = Decimal(price_text.strip())
        except InvalidOperation:
            raise ValueError(f"CREDIT_PACKS: {item!r}: the price must be a number such as 5.00") from None
        cents = price * 100
        if not price.is_finite() or cents != cents.to_integral_value() or not 0 < cents <= MAX_PRICE_CENTS:
            raise ValueError(f"CREDIT_PACKS: {item!r}: the price must be more than 0 with at most 2 decimals")
        pack = CreditPack(id=format_credits(credits), credits=credits, price=int(cents))
        if any(p.id == pack.id for p in packs):
            raise ValueError(f"CREDIT_PACKS: two packs of {pack.id} credits")
        packs.append(pack)
    return tuple(packs)


def find_pack(packs: tuple[CreditPack, ...], pack_id: str) -> CreditPack | None:
    return next((p for p in packs if p.id == (pack_id or "").strip()), None)
