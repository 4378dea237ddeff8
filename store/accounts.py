"""Signing up and the limits on sign-in attempts.

Registration always makes a plain user; the starting credits (`SIGNUP_CREDITS`) go
through the ledger like any grant. Sign-in attempts are limited twice: per client
address (every attempt, sign-ups included, counts) and per email (failed attempts
count; a success clears them). The counters live in memory, or in Redis when
`REDIS_URL` is set, so that every worker and host shares them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from sqlmodel import Session, select

from . import users
from .errors import InvalidInput
from .models import User


def register(session: Session, *, email: str, password: str, signup_credits: int = 0) -> User:
    """Create a plain user with `signup_credits` granted through the ledger.

    Raises InvalidInput for a bad email or password and Conflict for a taken email;
    nothing is written then. Hashes with bcrypt: call it from a worker thread.
    """
    return users.create_user(session, email=email, password=password, is_admin=False, credits_=signup_credits)


def authenticate(session: Session, *, email: str, password: str) -> User | None:
    """The user whose email and password these are, or None.

    An unknown email costs one bcrypt check too (see `users.check_password`), so the
    answer's timing does not tell which emails have accounts. Call from a worker thread.
    """
    try:
        email = users.normalize_email(email)
    except InvalidInput:
        email = ""
    user = session.exec(select(User).where(User.email == email)).first() if email else None
    session.rollback()
    ok = users.check_password(password, user.password_hash if user is not None else None)
    return user if ok and user is not None else None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an attempt was refused, and how long until the next one may go through."""

    reason: str  # "client" | "email"
    retry_after_s: int


class LoginLimiter:
    """Moving-window limits on attempts, per client address and per email."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        per_client: RateLimitItem = RateLimitItemPerMinute(30, 15),
        per_email_failures: RateLimitItem = RateLimitItemPerMinute(10, 15),
        namespace: str = "platform-login",
    ) -> None:
        uri = f"async+{redis_url}" if redis_url else "async+memory://"
        self._limiter = MovingWindowRateLimiter(storage_from_string(uri, key_prefix=namespace))
        self.per_client = per_client
        self.per_email_failures = per_email_failures

    async def attempt(self, *, client: str, email: str | None = None) -> Refusal | None:
        """Count one attempt from `client`; None when it may go ahead.

        With `email`, it is also refused while that email has too many recent failures.
        """
        if not await self._limiter.hit(self.per_client, "client", client):
            return Refusal("client", await self._retry_after(self.per_client, "client", client))
        if email is not None and not await self._limiter.test(self.per_email_failures, "email", email):
            return Refusal("email", await self._retry_after(self.per_email_failures, "email", email))
        return None

    async def failed(self, *, email: str) -> None:
        await self._limiter.hit(self.per_email_failures, "email", email)

    async def succeeded(self, *, email: str) -> None:
        await self._limiter.clear(self.per_email_failures, "email", email)

    async def _retry_after(self, item: RateLimitItem, *ident: str) -> int:
        stats = await self._limiter.get_window_stats(item, *ident)
        return max(1, math.ceil(stats.reset_time - time.time()))
