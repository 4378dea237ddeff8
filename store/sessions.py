"""Dashboard sign-ins: a random token in the browser's cookie, only its HMAC in the table.

A session ends when it expires, when its owner signs out, or when all of a user's
sessions are ended at once (`end_user_sessions`). Resolving a token reads the user
row too, so a role or API-access change shows on the very next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from .db import reads, rowcount
from .models import User, UserSession, utcnow

SESSION_TTL = timedelta(days=7)
# Writing `last_seen_at` on every request would turn each page view into a write.
SEEN_RESOLUTION = timedelta(minutes=10)
MAX_TOKEN_LEN = 128


def hash_token(secret_key: str, token: str) -> str:
    # "session:" keeps these hashes apart from API-key hashes made with the same secret.
    return hmac.new(secret_key.encode(), b"session:" + token.encode(), hashlib.sha256).hexdigest()


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def create_session(session: Session, *, secret_key: str, user_id: int, ttl: timedelta = SESSION_TTL) -> str:
    """Start a session for `user_id` and return its token (for the cookie; not stored)."""
    now = utcnow()
    token = secrets.token_urlsafe(32)
    # Housekeeping: this user's expired sessions go when a new one starts.
    session.execute(
        sa.delete(UserSession).where(col(UserSession.user_id) == user_id, col(UserSession.expires_at) <= now)
    )
    session.add(
        UserSession(
            user_id=user_id,
            token_hash=hash_token(secret_key, token),
            created_at=now,
            expires_at=now + ttl,
            last_seen_at=now,
        )
    )
    session.commit()
    return token


def resolve_session(session: Session, *, secret_key: str, token: str | None) -> User | None:
    """The user a token signs in, or None if it is missing, unknown or expired."""
    if not token or len(token) > MAX_TOKEN_LEN:
        return None
    row = session.execute(
        sa.select(UserSession, User)
        .join(User, col(User.id) == col(UserSession.user_id))
        .where(col(UserSession.token_hash) == hash_token(secret_key, token))
    ).first()
    if row is None:
        session.rollback()
        return None
    user_session, user = row
    now = utcnow()
    if _aware(user_session.expires_at) <= now:
        session.rollback()
        return None
    if now - _aware(user_session.last_seen_at) > SEEN_RESOLUTION:
        session.execute(sa.update(UserSession).where(col(UserSession.id) == user_session.id).values(last_seen_at=now))
        session.commit()
    else:
        session.rollback()
    return user


def end_session(session: Session, *, secret_key: str, token: str | None) -> bool:
    """Sign out: delete the session this token names. False if there was none."""
    if not token or len(token) > MAX_TOKEN_LEN:
        return False
    deleted = rowcount(
        session.execute(sa.delete(UserSession).where(col(UserSession.token_hash) == hash_token(secret_key, token)))
    )
    session.commit()
    return deleted > 0


def end_user_sessions(session: Session, *, user_id: int) -> int:
    """Sign a user out everywhere. Returns how many sessions ended."""
    deleted = rowcount(session.execute(sa.delete(UserSession).where(col(UserSession.user_id) == user_id)))
    session.commit()
    return deleted


@reads
def active_sessions(session: Session, *, user_id: int) -> list[UserSession]:
    query = select(UserSession).where(col(UserSession.user_id) == user_id, col(UserSession.expires_at) > utcnow())
    return list(session.exec(query.order_by(col(UserSession.id))))
