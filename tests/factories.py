"""Plain factory functions for test data, all through the store's own operations."""

from __future__ import annotations

import itertools

from store import keys, users
from store.db import session_for
from store.models import User

from .conftest import TEST_SECRET

_counter = itertools.count(1)


def make_user(engine, *, credits: int = 0, admin: bool = False, email: str | None = None,
              password: str = "correct horse battery") -> User:
    with session_for(engine) as session:
        return users.create_user(
            session,
            email=email or f"user{next(_counter)}@example.com",
            password=password,
            is_admin=admin,
            credits_=credits,
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
