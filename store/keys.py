"""API keys: issued once in full, stored only as an HMAC-SHA256 hash plus display parts."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets

import sqlalchemy as sa
from sqlmodel import Session, col, select

from . import events
from .db import reads
from .errors import InvalidInput, NotFound
from .models import ApiKey, User, utcnow

KEY_PREFIX = "sk_live_"
PREFIX_LEN = 12
_KEY_RE = re.compile(r"sk_live_[A-Za-z0-9_-]{32,120}")
MAX_NAME_LEN = 100
MAX_RATE_LIMIT = 1_000_000


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 43 URL-safe characters


def is_well_formed(raw: str) -> bool:
    return _KEY_RE.fullmatch(raw) is not None


def hash_key(secret_key: str, raw: str) -> str:
    return hmac.new(secret_key.encode(), raw.encode(), hashlib.sha256).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class KeyRecord:
    """What a request needs to know about the key that authenticated it."""

    key_id: int
    user_id: int
    name: str
    prefix: str
    rate_limit_per_minute: int
    key_enabled: bool
    user_api_enabled: bool

    @property
    def usable(self) -> bool:
        return self.key_enabled and self.user_api_enabled


@dataclasses.dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str  # the full key: show it once, never store or log it


def _validate_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("key name must not be empty")
    if len(name) > MAX_NAME_LEN:
        raise InvalidInput(f"key name must be at most {MAX_NAME_LEN} characters")
    if not name.isprintable():
        raise InvalidInput("key name must not contain control characters")
    return name


def _validate_rate_limit(rpm: int) -> int:
    if isinstance(rpm, bool) or not isinstance(rpm, int) or not 0 <= rpm <= MAX_RATE_LIMIT:
        raise InvalidInput(f"rate limit must be a whole number from 0 to {MAX_RATE_LIMIT}")
    return rpm


def rpm_ceiling(user: User, default: int) -> int:
    """The highest rate limit `user` may give their own keys (0: any, unlimited included):
    their own ceiling (set by an admin), else the platform's `default` (MAX_KEY_RPM)."""
    return default if user.max_key_rpm is None else user.max_key_rpm


def issue_key(
    session: Session,
    *,
    secret_key: str,
    user_id: int,
    name: str,
    rate_limit_per_minute: int,
    self_service_ceiling: int | None = None,
) -> IssuedKey:
    """Issue a key. A user issuing their own (the dashboard) passes the platform's
    `self_service_ceiling` (MAX_KEY_RPM): a rate limit above the user's ceiling, or
    unlimited under one, is refused. The operator's CLI passes none."""
    name = _validate_name(name)
    rpm = _validate_rate_limit(rate_limit_per_minute)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    if self_service_ceiling is not None:
        ceiling = rpm_ceiling(user, self_service_ceiling)
        if ceiling and not 1 <= rpm <= ceiling:
            raise InvalidInput(f"rate limit must be from 1 to {ceiling} per minute for this account")
    raw = generate_key()
    key = ApiKey(
        user_id=user_id,
        name=name,
        key_hash=hash_key(secret_key, raw),
        prefix=raw[:PREFIX_LEN],
        last4=raw[-4:],
        rate_limit_per_minute=rpm,
    )
    session.add(key)
    session.commit()
    session.refresh(key)
    return IssuedKey(key=key, secret=raw)


@reads
def verify_key(session: Session, *, secret_key: str, raw: str) -> KeyRecord | None:
    """The record for a presented key, or None if it is malformed, unknown, revoked or expired.

    The lookup is by HMAC, so timing depends only on the hash, never on which part of a
    guessed key was right; the final comparison is constant-time.
    """
    if not is_well_formed(raw):
        return None
    digest = hash_key(secret_key, raw)
    row = session.execute(
        sa.select(ApiKey, col(User.api_enabled))
        .join(User, col(User.id) == col(ApiKey.user_id))
        .where(col(ApiKey.key_hash) == digest)
    ).first()
    session.rollback()
    if row is None:
        return None
    key, api_enabled = row
    if not hmac.compare_digest(key.key_hash, digest):
        return None
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= utcnow()):
        return None
    return KeyRecord(
        key_id=key.id,
        user_id=key.user_id,
        name=key.name,
        prefix=key.prefix,
        rate_limit_per_minute=key.rate_limit_per_minute,
        key_enabled=key.enabled,
        user_api_enabled=api_enabled,
    )


@reads
def list_keys(session: Session, *, user_id: int) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).where(col(ApiKey.user_id) == user_id).order_by(col(ApiKey.id).desc())))


def _own_key(session: Session, key_id: int, user_id: int | None) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or (user_id is not None and key.user_id != user_id):
        raise NotFound("no such key")
    return key


def set_key_enabled(session: Session, *, key_id: int, enabled: bool, user_id: int | None = None) -> ApiKey:
    """Enable or disable a key; `user_id` restricts it to that user's own keys."""
    key = _own_key(session, key_id, user_id)
    if key.revoked_at is not None:
        raise InvalidInput("a revoked key cannot be changed")
    key.enabled = enabled
    session.add(key)
    session.commit()
    events.publish(events.KEYS_CHANGED, key.user_id)
    return key


def revoke_key(session: Session, *, key_id: int, user_id: int | None = None) -> ApiKey:
    key = _own_key(session, key_id, user_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        key.enabled = False
        session.add(key)
        session.commit()
        events.publish(events.KEYS_CHANGED, key.user_id)
    return key


def revoke_key_by_prefix(session: Session, *, prefix: str) -> ApiKey:
    """Revoke the one live key with this display prefix (the CLI's way to name a key)."""
    matches = list(session.exec(select(ApiKey).where(col(ApiKey.prefix) == prefix, col(ApiKey.revoked_at).is_(None))))
    if not matches:
        raise NotFound(f"no live key with prefix {prefix!r}")
    if len(matches) > 1:
        raise InvalidInput(f"{len(matches)} live keys share prefix {prefix!r}; revoke by id in the dashboard")
    key_id = matches[0].id
    assert key_id is not None  # a stored row
    return revoke_key(session, key_id=key_id)


def touch_last_used(session: Session, *, used: dict[int, object]) -> None:
    """Record when keys were last used (batched by the request-log writer)."""
    for key_id, when in used.items():
        session.execute(sa.update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=when))
    session.commit()
