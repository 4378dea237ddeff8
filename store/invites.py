"""Single-use sign-up invites (SIGNUP_POLICY=invite, or extra credits under `open`).

An admin issues one (the Users page, or `python -m store invite`); the link
`<origin>/register?invite=<token>` carries the token, and only its HMAC is stored, as
for sessions. Signing up with it consumes it in the transaction that creates the user
and grants the credits (store.accounts.register): of two sign-ups with one invite, one
gets it; a sign-up that fails (a taken email) leaves it unused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from . import credits
from .budgets import aware
from .db import reads
from .errors import Conflict, InvalidInput, NotFound, SignupRefused
from .models import Invite, User, table_of, utcnow
from .money import MICRO, format_credits

MAX_TOKEN_LEN = 128
MAX_TTL = timedelta(days=365)
_INVITES = table_of(Invite)
INVALID = "this invite link is not valid (used, expired or mistyped)"


def hash_token(secret_key: str, token: str) -> str:
    # "invite:" keeps these hashes apart from key, session and code hashes of the same secret.
    return hmac.new(secret_key.encode(), b"invite:" + token.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedInvite:
    invite: Invite
    token: str  # for the link: shown once, never stored


def create_invite(
    session: Session,
    *,
    secret_key: str,
    credits_: int = 0,
    ttl: timedelta = timedelta(days=7),
    created_by_user_id: int | None = None,
) -> IssuedInvite:
    """Issue an invite worth `credits_` micro-credits (on top of SIGNUP_CREDITS), valid for `ttl`."""
    if isinstance(credits_, bool) or not isinstance(credits_, int) or not 0 <= credits_ <= credits.MAX_BALANCE:
        raise InvalidInput(f"invite credits must be from 0 to {credits.MAX_BALANCE // MICRO:,}")
    if not timedelta(0) < ttl <= MAX_TTL:
        raise InvalidInput("an invite must be valid for 1 to 365 days")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    invite = Invite(
        token_hash=hash_token(secret_key, token),
        credits=credits_,
        created_by_user_id=created_by_user_id,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invite)
    session.commit()  # the id is set; nothing else to read back
    return IssuedInvite(invite=invite, token=token)


def invite_link(base_url: str, token: str) -> str:
    """The sign-up link of an invite; `base_url` is PUBLIC_BASE_URL or http://localhost:PORT."""
    return f"{base_url.rstrip('/')}/register?invite={token}"


@reads
def check_invite(session: Session, *, secret_key: str, token: str | None) -> Invite | None:
    """The unused, unexpired invite of `token`, or None (the sign-up page says so early)."""
    if not token or len(token) > MAX_TOKEN_LEN:
        return None
    invite = session.exec(select(Invite).where(col(Invite.token_hash) == hash_token(secret_key, token))).first()
    session.rollback()
    if invite is None or invite.used_at is not None or aware(invite.expires_at) <= utcnow():
        return None
    return invite


@reads
def list_invites(session: Session, *, limit: int = 50) -> list[Invite]:
    """The newest invites, used or not (the Users page)."""
    return list(session.exec(select(Invite).order_by(col(Invite.id).desc()).limit(limit)))


def withdraw_invite(session: Session, *, invite_id: int) -> Invite:
    """End an unused invite now (its link stops working)."""
    invite = session.get(Invite, invite_id)
    if invite is None:
        raise NotFound("no such invite")
    if invite.used_at is not None:
        raise InvalidInput("this invite was used already")
    invite.expires_at = utcnow()
    session.add(invite)
    session.commit()
    return invite


def register_with_invite(
    session: Session, *, secret_key: str, token: str, email: str, password_hash: str, signup_credits: int
) -> User:
    """Create a plain user with a hashed password, consuming the invite of `token`, and
    grant the sign-up and invite credits: one transaction. SignupRefused("invite") when
    the invite is not valid, Conflict for a taken email (the invite stays unused)."""
    if not token or len(token) > MAX_TOKEN_LEN:
        raise SignupRefused(INVALID, reason="invite")
    now = utcnow()
    conn = session.connection()
    taken = conn.execute(
        sa.update(_INVITES)
        .where(
            _INVITES.c.token_hash == hash_token(secret_key, token),
            _INVITES.c.used_at.is_(None),
            _INVITES.c.expires_at > sa.bindparam("now", now, type_=_INVITES.c.expires_at.type),
        )
        .values(used_at=now)
        .returning(_INVITES.c.id, _INVITES.c.credits)
    ).first()
    if taken is None:
        session.rollback()
        raise SignupRefused(INVALID, reason="invite")
    invite_id, invite_credits = taken
    user = User(email=email, password_hash=password_hash, is_admin=False, created_at=now)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()  # the invite is unused again
        raise Conflict("an account with this email already exists") from None
    assert user.id is not None  # flushed
    conn.execute(sa.update(_INVITES).where(_INVITES.c.id == invite_id).values(used_by_user_id=user.id))
    for amount, note in (
        (signup_credits, "starting credits"),
        (invite_credits, f"invite credits ({format_credits(invite_credits)})"),
    ):
        if amount and credits.grant_in_transaction(session, user_id=user.id, amount=amount, note=note) is None:
            session.rollback()
            raise InvalidInput(f"the balance would exceed {credits.MAX_BALANCE // MICRO:,}")
    session.commit()
    session.refresh(user)  # the balance the grants left
    session.expunge(user)  # keep it loaded past the rollback that ends the read
    session.rollback()
    return user
