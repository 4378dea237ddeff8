"""Users and their passwords (bcrypt). Callers on an event loop hash in a thread."""

from __future__ import annotations

import functools
import re

import bcrypt
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from . import credits, events
from .errors import Conflict, InvalidInput, NotFound
from .models import CLEAR, User
from .money import MICRO

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores everything past 72 bytes; refuse rather than truncate


def normalize_email(email: str) -> str:
    email = (email or "").strip().lower()
    if len(email) > 254 or not _EMAIL_RE.fullmatch(email) or not email.isprintable():
        raise InvalidInput("enter a valid email address")
    return email


def validate_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD_LEN:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LEN} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD_BYTES} bytes")
    return password


def hash_password(password: str) -> str:
    return bcrypt.hashpw(validate_password(password).encode(), bcrypt.gensalt()).decode()


@functools.cache
def _dummy_hash() -> str:
    """Compared against when the email is unknown, so a miss costs as much as a hit."""
    return bcrypt.hashpw(b"dummy-password-for-timing", bcrypt.gensalt()).decode()


def check_password(password: str, password_hash: str | None) -> bool:
    encoded = (password or "").encode()
    if len(encoded) > MAX_PASSWORD_BYTES:
        encoded = b""
    ok = bcrypt.checkpw(encoded, (password_hash or _dummy_hash()).encode())
    return ok and password_hash is not None


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    is_admin: bool = False,
    credits_: int = 0,
    password_hash: str | None = None,
) -> User:
    """Create a user; `password_hash` lets an async caller hash off its event loop first."""
    email = normalize_email(email)
    if not 0 <= credits_ <= credits.MAX_BALANCE:
        raise InvalidInput(f"starting credits must be between 0 and {credits.MAX_BALANCE // MICRO:,}")
    user = User(email=email, password_hash=password_hash or hash_password(password), is_admin=is_admin)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("an account with this email already exists") from None
    session.refresh(user)
    assert user.id is not None  # stored
    if credits_:
        credits.grant(session, user_id=user.id, amount=credits_, note="starting credits")
        session.refresh(user)
    return user


def get_user_by_email(session: Session, *, email: str) -> User:
    user = session.exec(select(User).where(col(User.email) == normalize_email(email))).first()
    if user is None:
        raise NotFound(f"no user {email!r}")
    return user


MAX_KEY_RPM = 1_000_000


def set_user_flags(
    session: Session,
    *,
    user_id: int,
    api_enabled: bool | None = None,
    is_admin: bool | None = None,
    max_key_rpm: object = None,
) -> User:
    """Change a user's API access, role, or the ceiling on their own keys' rate limits
    (`max_key_rpm`: a number, 0 for none, CLEAR for the platform's MAX_KEY_RPM, None: as it is)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    if max_key_rpm is CLEAR:
        user.max_key_rpm = None
    elif max_key_rpm is not None:
        if isinstance(max_key_rpm, bool) or not isinstance(max_key_rpm, int) or not 0 <= max_key_rpm <= MAX_KEY_RPM:
            raise InvalidInput(f"max key rpm must be a whole number from 0 to {MAX_KEY_RPM:,}")
        user.max_key_rpm = max_key_rpm
    if api_enabled is not None:
        user.api_enabled = api_enabled
    if is_admin is not None:
        user.is_admin = is_admin
    session.add(user)
    session.commit()
    session.refresh(user)
    events.publish(events.KEYS_CHANGED, user.id)
    return user


def set_low_balance_threshold(session: Session, *, user_id: int, threshold: object) -> User:
    """Set the balance (micro-credits) below which the user sees a low-balance banner and
    the operator is alerted (store.alerts), or CLEAR it. A balance already below the new
    threshold counts as reported: the next alert comes after it rose over it and fell again."""
    threshold = validate_threshold(threshold)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    if threshold is CLEAR:
        user.low_balance_threshold, user.low_balance_alerted = None, False
    else:
        assert isinstance(threshold, int)
        user.low_balance_threshold, user.low_balance_alerted = threshold, user.balance < threshold
    session.add(user)
    session.commit()
    return user


def validate_threshold(threshold: object) -> object:
    """A low-balance threshold as given (micro-credits, or CLEAR); InvalidInput when out of range."""
    if threshold is CLEAR:
        return threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 < threshold <= credits.MAX_BALANCE:
        raise InvalidInput(
            f"the low-balance threshold must be more than 0 and at most {credits.MAX_BALANCE // MICRO:,}"
        )
    return threshold


def balance_is_low(user: User) -> bool:
    """Whether the user's low-balance banner shows (their balance is below their threshold)."""
    return user.low_balance_threshold is not None and user.balance < user.low_balance_threshold


def ensure_admin(session: Session, *, email: str, password: str) -> User:
    """Make sure this admin exists (ADMIN_EMAIL/ADMIN_PASSWORD at start-up)."""
    try:
        user = get_user_by_email(session, email=email)
    except NotFound:
        return create_user(session, email=email, password=password, is_admin=True)
    if not user.is_admin:
        assert user.id is not None  # a stored row
        user = set_user_flags(session, user_id=user.id, is_admin=True)
    return user


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.id))))
