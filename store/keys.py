"""API keys: issued once in full, stored only as an HMAC-SHA256 hash plus display parts.

A key may carry controls (SPEC, "Operator controls"): a credit budget with a reset period,
a model allow-list and an expiry time. They are set here (`issue_key`, `edit_key`, with the
text parsers the CLI and the forms share) and enforced by the debit (store.credits), in the
statement that takes the hold, so no cache and no race lets a key past them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from . import budgets, events
from .db import reads
from .errors import InvalidInput, NotFound
from .models import CLEAR, ApiKey, ModelEntry, User, utcnow
from .money import MICRO, parse_credits

KEY_PREFIX = "sk_live_"
PREFIX_LEN = 12
_KEY_RE = re.compile(r"sk_live_[A-Za-z0-9_-]{32,120}")
MAX_NAME_LEN = 100
MAX_RATE_LIMIT = 1_000_000
MAX_BUDGET = 1_000_000_000 * MICRO  # as a balance may hold at most (store.credits.MAX_BALANCE)
MAX_ALLOWED_MODELS = 200


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
    allowed_models: frozenset[str] | None = None  # None: every model
    expires_at: datetime | None = None
    budget: int | None = None  # micro-credits a period; None: no budget

    @property
    def usable(self) -> bool:
        return self.key_enabled and self.user_api_enabled

    def allows(self, model_id: str) -> bool:
        """Whether the allow-list lets this key call `model_id` (the debit checks it again)."""
        return self.allowed_models is None or model_id in self.allowed_models

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and budgets.aware(self.expires_at) <= (now or utcnow())


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


# ---------------------------------------------------------------- key controls


@dataclasses.dataclass(frozen=True, slots=True)
class KeyControls:
    """What a key may spend, call and for how long. Each field None: no such control."""

    budget: int | None = None  # micro-credits per period
    budget_period: str | None = None  # "day" | "week" | "month"; None: the key's whole life
    models: tuple[str, ...] | None = None  # registry ids
    expires_at: datetime | None = None


def parse_budget(text: str) -> int | object:
    """A budget in credits (`25`, `2.5`), or CLEAR for `none` or nothing."""
    text = (text or "").strip()
    if text.lower() in ("", "none"):
        return CLEAR
    return _validate_budget(parse_credits(text, what="budget"))


def parse_period(text: str) -> str | object:
    """`day`, `week` or `month` (also daily/weekly/monthly), or CLEAR for `none` or nothing."""
    text = (text or "").strip().lower()
    if text in ("", "none"):
        return CLEAR
    words = {word: period for period, word in budgets.RESET_WORDS.items()}
    period = words.get(text, text)
    if period not in budgets.PERIODS:
        raise InvalidInput("budget period must be day, week, month or none")
    return period


def parse_models(text: str) -> tuple[str, ...] | object:
    """Comma-separated registry ids (`a,b`), or CLEAR for `none` or nothing (every model)."""
    text = (text or "").strip()
    if text.lower() in ("", "none"):
        return CLEAR
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_expiry(text: str) -> datetime | object:
    """An ISO 8601 date or time (`2027-01-31`, `2027-01-31T18:00:00+02:00`; no zone: UTC),
    or CLEAR for `none` or nothing. A date alone means 00:00 UTC that day."""
    text = (text or "").strip()
    if text.lower() in ("", "none"):
        return CLEAR
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"expiry {text!r} is not an ISO date or time such as 2027-01-31") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _validate_budget(budget: object) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int) or not 0 < budget <= MAX_BUDGET:
        raise InvalidInput(f"budget must be more than 0 and at most {MAX_BUDGET // MICRO:,} credits")
    return budget


def _validate_models(session: Session, models: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(m.strip() for m in models if isinstance(m, str) and m.strip()))
    if not chosen:
        raise InvalidInput("the model list must name at least one model (or none for every model)")
    if len(chosen) > MAX_ALLOWED_MODELS:
        raise InvalidInput(f"the model list may name at most {MAX_ALLOWED_MODELS} models")
    known = set(session.exec(select(ModelEntry.id).where(col(ModelEntry.id).in_(chosen))))
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise InvalidInput(f"unknown model {unknown[0]!r}; `python -m store models` lists them")
    return chosen


def _validate_expiry(when: object) -> datetime:
    if not isinstance(when, datetime):
        raise InvalidInput("expiry must be a date or time")
    when = budgets.aware(when)
    if when <= utcnow():
        raise InvalidInput("expiry must be in the future")
    return when


def models_of(key: ApiKey) -> tuple[str, ...] | None:
    """The key's allow-list (None: every model)."""
    return None if key.allowed_models is None else tuple(json.loads(key.allowed_models))


def budget_of(key: ApiKey, now: datetime | None = None) -> budgets.BudgetStatus | None:
    """The key's budget and what it spent this period, or None when it has no budget."""
    return budgets.status(
        budget=key.budget,
        spent=key.budget_spent,
        period=key.budget_period,
        period_start=key.budget_period_start,
        now=now or utcnow(),
    )


def _apply_controls(session: Session, key: ApiKey, changes: dict[str, object]) -> None:
    """Set the controls named in `changes` (a value, or CLEAR) on `key`, validated; raises
    InvalidInput before anything is set."""
    budget, period = key.budget, key.budget_period
    if "budget" in changes:
        budget = None if changes["budget"] is CLEAR else _validate_budget(changes["budget"])
    if "budget_period" in changes:
        value = changes["budget_period"]
        period = None if value is CLEAR else value  # type: ignore[assignment]
        if period is not None and period not in budgets.PERIODS:
            raise InvalidInput("budget period must be day, week, month or none")
    if budget is None:
        if "budget_period" in changes and period is not None:
            raise InvalidInput("a budget period needs a budget")
        period = None  # no budget, nothing to reset
    models = key.allowed_models
    if "models" in changes:
        value = changes["models"]
        models = None if value is CLEAR else json.dumps(_validate_models(session, value))  # type: ignore[arg-type]
    expires_at = key.expires_at
    if "expires_at" in changes:
        value = changes["expires_at"]
        expires_at = None if value is CLEAR else _validate_expiry(value)
    if (budget, period) != (key.budget, key.budget_period):
        # Alerts are judged afresh against the new budget. The spend stays: a budget is
        # what the key may spend, and an edit must not forget what it already did.
        key.budget_alert_level = 0
    key.budget, key.budget_period, key.allowed_models, key.expires_at = budget, period, models, expires_at


def _controls_changes(controls: KeyControls | None) -> dict[str, object]:
    if controls is None:
        return {}
    changes: dict[str, object] = {}
    if controls.budget is not None:
        changes["budget"] = controls.budget
    if controls.budget_period is not None:
        changes["budget_period"] = controls.budget_period
    if controls.models is not None:
        changes["models"] = controls.models
    if controls.expires_at is not None:
        changes["expires_at"] = controls.expires_at
    return changes


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
    controls: KeyControls | None = None,
) -> IssuedKey:
    """Issue a key, with `controls` if given. A user issuing their own (the dashboard) passes
    the platform's `self_service_ceiling` (MAX_KEY_RPM): a rate limit above the user's
    ceiling, or unlimited under one, is refused. The operator's CLI passes none."""
    name = _validate_name(name)
    rpm = _validate_rate_limit(rate_limit_per_minute)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    _check_ceiling(user, rpm, self_service_ceiling)
    raw = generate_key()
    key = ApiKey(
        user_id=user_id,
        name=name,
        key_hash=hash_key(secret_key, raw),
        prefix=raw[:PREFIX_LEN],
        last4=raw[-4:],
        rate_limit_per_minute=rpm,
    )
    try:
        _apply_controls(session, key, _controls_changes(controls))
    except InvalidInput:
        session.rollback()
        raise
    session.add(key)
    session.commit()
    session.refresh(key)
    return IssuedKey(key=key, secret=raw)


def _check_ceiling(user: User, rpm: int, self_service_ceiling: int | None) -> None:
    if self_service_ceiling is not None:
        ceiling = rpm_ceiling(user, self_service_ceiling)
        if ceiling and not 1 <= rpm <= ceiling:
            raise InvalidInput(f"rate limit must be from 1 to {ceiling} per minute for this account")


def edit_key(
    session: Session,
    *,
    key_id: int,
    user_id: int | None = None,
    name: str | None = None,
    rate_limit_per_minute: int | None = None,
    budget: object = None,
    budget_period: object = None,
    models: object = None,
    expires_at: object = None,
    self_service_ceiling: int | None = None,
) -> ApiKey:
    """Change a key's name, rate limit or controls; `user_id` restricts it to that user's own
    keys (and `self_service_ceiling` bounds their rate limit, as in `issue_key`).

    Each control: None leaves it as it is, CLEAR removes it, a value sets it (`budget` in
    micro-credits, `budget_period` one of store.budgets.PERIODS, `models` registry ids,
    `expires_at` a future time). Bad input raises InvalidInput and changes nothing. Every
    process sees the change at the key's next model call (the debit reads the row).
    """
    key = _own_key(session, key_id, user_id)
    if key.revoked_at is not None:
        raise InvalidInput("a revoked key cannot be changed")
    changes = {
        field: value
        for field, value in (
            ("budget", budget),
            ("budget_period", budget_period),
            ("models", models),
            ("expires_at", expires_at),
        )
        if value is not None
    }
    try:
        if name is not None:
            key.name = _validate_name(name)
        if rate_limit_per_minute is not None:
            key.rate_limit_per_minute = _validate_rate_limit(rate_limit_per_minute)
            user = session.get(User, key.user_id)
            assert user is not None  # the key's owner
            _check_ceiling(user, key.rate_limit_per_minute, self_service_ceiling)
        _apply_controls(session, key, changes)
    except InvalidInput:
        session.rollback()  # the loaded key forgets the edits made to it so far
        raise
    session.add(key)
    session.commit()
    session.refresh(key)
    events.publish(events.KEYS_CHANGED, key.user_id)
    return key


def live_key_by_prefix(session: Session, *, prefix: str) -> ApiKey:
    """The one live key with this display prefix (the CLI's way to name a key)."""
    matches = list(session.exec(select(ApiKey).where(col(ApiKey.prefix) == prefix, col(ApiKey.revoked_at).is_(None))))
    session.rollback()
    if not matches:
        raise NotFound(f"no live key with prefix {prefix!r}")
    if len(matches) > 1:
        raise InvalidInput(f"{len(matches)} live keys share prefix {prefix!r}; use the dashboard")
    return matches[0]


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
    if key.revoked_at is not None or (key.expires_at is not None and budgets.aware(key.expires_at) <= utcnow()):
        return None
    models = models_of(key)
    return KeyRecord(
        key_id=key.id,
        user_id=key.user_id,
        name=key.name,
        prefix=key.prefix,
        rate_limit_per_minute=key.rate_limit_per_minute,
        key_enabled=key.enabled,
        user_api_enabled=api_enabled,
        allowed_models=None if models is None else frozenset(models),
        expires_at=key.expires_at,
        budget=key.budget,
    )


@reads
def allowed_models(session: Session, *, key_id: int) -> frozenset[str] | None:
    """The key's allow-list as stored now (None: every model, or no such key)."""
    stored = session.execute(sa.select(col(ApiKey.allowed_models)).where(col(ApiKey.id) == key_id)).scalar()
    session.rollback()
    return None if stored is None else frozenset(json.loads(stored))


@reads
def budget_status(session: Session, *, key_id: int) -> budgets.BudgetStatus | None:
    """The key's budget and its spend this period, as stored now (GET /api/v1/key)."""
    key = session.get(ApiKey, key_id)
    session.rollback()
    if key is None:
        raise NotFound("no such key")
    return budget_of(key)


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
    key_id = live_key_by_prefix(session, prefix=prefix).id
    assert key_id is not None  # a stored row
    return revoke_key(session, key_id=key_id)


def touch_last_used(session: Session, *, used: dict[int, object]) -> None:
    """Record when keys were last used (batched by the request-log writer)."""
    for key_id, when in used.items():
        session.execute(sa.update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=when))
    session.commit()
