"""Plain factory functions for test data, all through the store's own operations."""

from __future__ import annotations

import itertools
from decimal import Decimal

from store import credits as ledger
from store import keys, registry, users
from store.db import session_for
from store.models import CLEAR, User
from store.money import MICRO, parse_credits

from .conftest import TEST_SECRET

_counter = itertools.count(1)


def make_user(
    engine,
    *,
    credits: int | str | Decimal = 0,
    admin: bool = False,
    email: str | None = None,
    password: str = "correct horse battery",
) -> User:
    """A user with `credits` (whole or decimal credits, as a person writes them)."""
    with session_for(engine) as session:
        return users.create_user(
            session,
            email=email or f"user{next(_counter)}@example.com",
            password=password,
            is_admin=admin,
            credits_=parse_credits(str(credits)),
            password_hash=_FAST_HASH if password == "correct horse battery" else None,
        )


def make_key(engine, user: User, *, rpm: int = 0, name: str = "test key") -> str:
    """Issue a key and return its full secret."""
    with session_for(engine) as session:
        return keys.issue_key(
            session, secret_key=TEST_SECRET, user_id=user.id, name=name, rate_limit_per_minute=rpm
        ).secret


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# bcrypt at its default cost is slow on purpose; tests that do not sign in reuse one hash.
_FAST_HASH = users.hash_password("correct horse battery")


def credits_of(engine, user_or_id) -> Decimal:
    """The user's balance in credits, exact (`Decimal("9.5")`; equal to `9` when whole)."""
    user_id = getattr(user_or_id, "id", user_or_id)
    with session_for(engine) as session:
        return Decimal(ledger.balance(session, user_id=user_id)) / MICRO


def as_credits(micro: int | None) -> Decimal | None:
    """A stored micro-credit amount in credits, exact."""
    return None if micro is None else Decimal(micro) / MICRO


def flat_seed_prices(engine) -> None:
    """The seeded chat models priced per request at their seed fee (3, 1 and 4 credits),
    as the seed document prices them: for the tests of a call's mechanics (relay, refunds,
    limits, logs), whose arithmetic is the flat fee; the shipped per-token prices and the
    bounds are tested on their own (tests/api/test_bounds.py, tests/store/test_pricing.py)."""
    with session_for(engine) as session:
        for model_id in ("openai/gpt-5", "openai/gpt-5-mini", "anthropic/claude-sonnet-4.5"):
            registry.set_model(
                session,
                model_id=model_id,
                actor="test",
                pricing="per_request",
                prompt_price=0,
                completion_price=0,
                cache_read_price=CLEAR,
                cache_write_price=CLEAR,
            )
