"""Signing up, changing a password, and the limits on sign-in attempts.

Registration always makes a plain user, if `SIGNUP_POLICY` lets anyone (`open`), holders
of an invite (`invite`) or no one (`closed`) sign up; the starting credits (`SIGNUP_CREDITS`,
and an invite's own) go through the ledger like any grant. A password change ends every session of that user.
Sign-in attempts are limited twice: per client address (every attempt, sign-ups
included, counts) and per email *from that client* (failed attempts count; a success
clears them). The second is keyed by (email, client) on purpose: ten wrong guesses
from an attacker's address must not refuse the owner on their own device. What the
email's failures from every client do is slow each attempt for it down, by at most
`MAX_DELAY_S` (`failure_delay`), as do the client's own failures. The counters live in
memory, or in Redis when `REDIS_URL` is set, so that every worker and host shares them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import sqlalchemy as sa
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from sqlmodel import Session, col, select

from . import invites, sessions, users
from .db import rowcount
from .errors import InvalidInput, NotFound, SignupRefused, WrongPassword
from .limit_storage import counter_storage
from .models import User

OPEN, INVITE, CLOSED = "open", "invite", "closed"  # SIGNUP_POLICY
SIGNUP_POLICIES = (OPEN, INVITE, CLOSED)


def register(
    session: Session,
    *,
    email: str,
    password: str,
    signup_credits: int = 0,
    policy: str = OPEN,
    invite_token: str | None = None,
    secret_key: str = "",
) -> User:
    """Create a plain user with `signup_credits` granted through the ledger, as `policy`
    (SIGNUP_POLICY) allows: anyone under `open`, holders of a valid unused invite under
    `invite`, no one under `closed` (SignupRefused, before anything is looked at). An
    `invite_token` (any policy) is consumed with the user's creation and adds its credits.

    Raises InvalidInput for a bad email or password, SignupRefused("invite") for a missing
    or invalid invite, and Conflict for a taken email; nothing is written then. The
    password is hashed (bcrypt) before the email is looked up, so a taken email costs
    what a new one does. Call it from a worker thread.
    """
    if policy not in SIGNUP_POLICIES:
        raise InvalidInput(f"sign-up policy must be one of {', '.join(SIGNUP_POLICIES)}")
    if policy == CLOSED:
        raise SignupRefused("sign-up is closed", reason="closed")
    if policy == INVITE and not invite_token:
        raise SignupRefused("sign-up needs an invite", reason="invite")
    email = users.normalize_email(email)
    password_hash = users.hash_password(password)
    if invite_token:
        return invites.register_with_invite(
            session,
            secret_key=secret_key,
            token=invite_token,
            email=email,
            password_hash=password_hash,
            signup_credits=signup_credits,
        )
    return users.create_user(
        session, email=email, password=password, is_admin=False, credits_=signup_credits, password_hash=password_hash
    )


def authenticate(session: Session, *, email: str, password: str) -> User | None:
    """The user whose email and password these are, or None.

    An unknown email costs one bcrypt check too (see `users.check_password`), so the
    answer's timing does not tell which emails have accounts. Call from a worker thread.
    """
    try:
        email = users.normalize_email(email)
    except InvalidInput:
        email = ""
    user = session.exec(select(User).where(col(User.email) == email)).first() if email else None
    session.rollback()
    ok = users.check_password(password, user.password_hash if user is not None else None)
    return user if ok and user is not None else None


def change_password(session: Session, *, user_id: int, current_password: str, new_password: str) -> int:
    """Replace a user's password and end every session of theirs; returns how many ended.

    Raises InvalidInput when the new password breaks the rules or equals the current
    one, WrongPassword when `current_password` is not theirs, NotFound for no such
    user; nothing changes then. The caller signs the person in again if it wants to.
    Runs bcrypt twice: call it from a worker thread.
    """
    users.validate_password(new_password)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    old_hash = user.password_hash
    session.rollback()  # no transaction stays open through bcrypt
    if not users.check_password(current_password, old_hash):
        raise WrongPassword("the current password is wrong")
    if new_password == current_password:
        raise InvalidInput("the new password must differ from the current one")
    new_hash = users.hash_password(new_password)
    # Only over the hash just checked: of two changes at once, the second finds it gone.
    updated = rowcount(
        session.execute(
            sa.update(User)
            .where(col(User.id) == user_id, col(User.password_hash) == old_hash)
            .values(password_hash=new_hash)
        )
    )
    if updated != 1:
        session.rollback()
        raise WrongPassword("the current password is wrong")
    return sessions.end_user_sessions(session, user_id=user_id)  # one commit for both


FREE_FAILURES = 3
DELAY_STEP_S = 0.25
MAX_DELAY_S = 2.0


def failure_delay(failures: int) -> float:
    """Seconds a sign-in waits before its password is checked, after `failures` recent ones.

    Nothing for the first FREE_FAILURES, then DELAY_STEP_S more per failure, up to
    MAX_DELAY_S. The wait comes before the check, so dropping the connection early
    tells an attacker nothing.
    """
    return min(MAX_DELAY_S, DELAY_STEP_S * max(0, failures - FREE_FAILURES))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an attempt was refused, and how long until the next one may go through."""

    reason: str  # "client" | "email" (too many failures for this email from this client)
    retry_after_s: int


class LoginLimiter:
    """Moving-window limits on attempts, per client address and per (email, client).

    Failures are also counted per client (`per_client_failures`) and per email from
    any client (`per_email_failures`, key "email-any"); those two counts only set the
    wait (`failure_delay`). Refusals come from the client's attempts and from the
    (email, client) failures, so nobody can lock an account from somewhere else.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        per_client: RateLimitItem = RateLimitItemPerMinute(30, 15),
        per_email_failures: RateLimitItem = RateLimitItemPerMinute(10, 15),
        per_client_failures: RateLimitItem = RateLimitItemPerMinute(30, 15),
        namespace: str = "platform-login",
    ) -> None:
        uri = f"async+{redis_url}" if redis_url else "async+memory://"
        self._limiter = MovingWindowRateLimiter(counter_storage(uri, key_prefix=namespace))
        self.per_client = per_client
        self.per_email_failures = per_email_failures
        self.per_client_failures = per_client_failures

    async def attempt(self, *, client: str, email: str | None = None) -> Refusal | None:
        """Count one attempt from `client`; None when it may go ahead.

        With `email`, it is also refused while that email has too many recent failures.
        """
        if not await self._limiter.hit(self.per_client, "client", client):
            return Refusal("client", await self._retry_after(self.per_client, "client", client))
        if email is not None and not await self._limiter.test(self.per_email_failures, "email", email, client):
            return Refusal("email", await self._retry_after(self.per_email_failures, "email", email, client))
        return None

    async def failed(self, *, email: str, client: str) -> None:
        await self._limiter.hit(self.per_email_failures, "email", email, client)
        await self._limiter.hit(self.per_email_failures, "email-any", email)
        await self._limiter.hit(self.per_client_failures, "client-failures", client)

    async def recent_failures(self, *, client: str, email: str | None = None) -> int:
        """Failed attempts in the window from this client, or for this email from any
        client, whichever is more (this sets the wait only)."""
        counts = [await self._used(self.per_client_failures, "client-failures", client)]
        if email is not None:
            counts.append(await self._used(self.per_email_failures, "email-any", email))
        return max(counts)

    async def succeeded(self, *, email: str, client: str) -> None:
        """The right password: that email's failures are forgiven, from this client and overall."""
        await self._limiter.clear(self.per_email_failures, "email", email, client)
        await self._limiter.clear(self.per_email_failures, "email-any", email)

    async def _used(self, item: RateLimitItem, *ident: str) -> int:
        return item.amount - (await self._limiter.get_window_stats(item, *ident)).remaining

    async def _retry_after(self, item: RateLimitItem, *ident: str) -> int:
        stats = await self._limiter.get_window_stats(item, *ident)
        return max(1, math.ceil(stats.reset_time - time.time()))
