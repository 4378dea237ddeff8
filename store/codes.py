"""Redemption codes: credits for operators without Stripe.

An admin issues them (`python -m store codes create N --credits X`), each shown once and
stored only as its HMAC. A user redeems one on the Credits page: the code is marked used
and its credits granted (a `grant` ledger row, ref `code:<id>`) in one transaction, by a
conditional update, so of two redemptions of one code at once exactly one is credited.
Codes are 20 characters of Crockford's base32 (100 random bits), typed in any case, with
or without the dashes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from . import credits
from .db import reads
from .errors import InvalidInput
from .models import RedemptionCode, table_of, utcnow
from .money import MICRO, format_credits

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U
CODE_CHARS = 20
MAX_CODES = 1000
INVALID = "this code is not valid (used, expired or mistyped)"
_CODES = table_of(RedemptionCode)
_TYPED = re.compile(r"[0-9A-Z]{20}")


def generate_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(raw[i : i + 5] for i in range(0, CODE_CHARS, 5))


def normalize(code: str) -> str | None:
    """The code as stored (upper case, no dashes or spaces; O read as 0, I and L as 1),
    or None when it cannot be one."""
    text = re.sub(r"[\s-]", "", (code or "")[:64]).upper().translate(str.maketrans("OIL", "011"))
    return text if _TYPED.fullmatch(text) else None


def hash_code(secret_key: str, code: str) -> str:
    return hmac.new(secret_key.encode(), b"code:" + code.encode(), hashlib.sha256).hexdigest()


def create_codes(
    session: Session,
    *,
    secret_key: str,
    count: int,
    credits_: int,
    ttl: timedelta | None = None,
    created_by_user_id: int | None = None,
) -> list[str]:
    """Issue `count` codes worth `credits_` micro-credits each (valid for `ttl`, or for
    ever); returns them, the only time they are seen."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CODES:
        raise InvalidInput(f"issue from 1 to {MAX_CODES} codes at a time")
    if isinstance(credits_, bool) or not isinstance(credits_, int) or not 0 < credits_ <= credits.MAX_BALANCE:
        raise InvalidInput(f"credits must be more than 0 and at most {credits.MAX_BALANCE // MICRO:,}")
    if ttl is not None and not timedelta(0) < ttl <= timedelta(days=3650):
        raise InvalidInput("a code must be valid for 1 to 3650 days")
    now = utcnow()
    codes = [generate_code() for _ in range(count)]
    for code in codes:
        session.add(
            RedemptionCode(
                code_hash=hash_code(secret_key, normalize(code) or ""),
                credits=credits_,
                created_by_user_id=created_by_user_id,
                created_at=now,
                expires_at=now + ttl if ttl else None,
            )
        )
    session.commit()
    return codes


def redeem(session: Session, *, secret_key: str, user_id: int, code: str) -> int:
    """Credit `user_id` with the code's credits and use it up; returns the credits granted.
    InvalidInput (and nothing changes) for a code that is unknown, used or expired."""
    typed = normalize(code)
    if typed is None:
        raise InvalidInput(INVALID)
    now = utcnow()
    row = (
        session.connection()
        .execute(
            sa.update(_CODES)
            .where(
                _CODES.c.code_hash == hash_code(secret_key, typed),
                _CODES.c.redeemed_at.is_(None),
                sa.or_(
                    _CODES.c.expires_at.is_(None),
                    _CODES.c.expires_at > sa.bindparam("now", now, type_=_CODES.c.expires_at.type),
                ),
            )
            .values(redeemed_at=now, redeemed_by_user_id=user_id)
            .returning(_CODES.c.id, _CODES.c.credits)
        )
        .first()
    )
    if row is None:
        session.rollback()
        raise InvalidInput(INVALID)
    code_id, amount = row
    granted = credits.grant_in_transaction(
        session,
        user_id=user_id,
        amount=amount,
        ref=f"code:{code_id}",
        note=f"redemption code …{typed[-4:]} ({format_credits(amount)} credits)",
    )
    if granted is None:  # rolled back: the code stays unused
        raise InvalidInput(f"the balance would exceed {credits.MAX_BALANCE // MICRO:,}")
    session.commit()
    return amount


@reads
def list_codes(session: Session, *, limit: int = 100) -> list[RedemptionCode]:
    """The newest codes, redeemed or not (an admin's view; the codes themselves are not kept)."""
    return list(session.exec(select(RedemptionCode).order_by(col(RedemptionCode.id).desc()).limit(limit)))
