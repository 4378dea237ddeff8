"""The credit ledger: every change of a balance is one conditional update plus one row.

The balance lives on the user row so that admission is a single atomic statement
(`UPDATE … SET balance = balance - cost WHERE id = … AND balance >= cost`); the ledger
row is written in the same transaction, so the balance always equals the ledger sum.
Amounts are micro-credits (store.money).

One billing path for every model call (SPEC, "Metering"):

    debit_for_request  the hold: the request's upper bound, `charge` row, at admission
    settle             what the usage says it cost (never above the hold): the difference
                       comes back in one `settle` row
    refund             a failed request: everything charged for it comes back, `refund` row

A unique (kind, ref) makes each of the three happen at most once per request.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from . import holds
from .db import on_connection, reads
from .errors import InsufficientCredits, InvalidInput, KeyNotUsable, NotFound
from .models import ApiKey, LedgerEntry, User, table_of, utcnow
from .money import MICRO, format_credits
from .pricing import final_charge

GRANT, CHARGE, SETTLE, REFUND = "grant", "charge", "settle", "refund"
# No grant takes a balance past this, so the ledger's sums stay far inside the columns'
# range on every database (a grant of 9e18 would overflow them). Refunds are never capped:
# giving back what was charged must always succeed.
MAX_BALANCE = 1_000_000_000 * MICRO
MAX_NOTE = 500  # characters: the ledger's note column
_NO_CEILING = 2**62


_USERS = table_of(User)
# The two statements of every change of a balance: the conditional update, the ledger row.
_CONDITIONAL_ADD = (
    sa.update(_USERS)
    .where(
        _USERS.c.id == sa.bindparam("user_id"),
        _USERS.c.balance + sa.bindparam("amount") >= 0,
        _USERS.c.balance + sa.bindparam("amount") <= sa.bindparam("ceiling", type_=sa.BigInteger),
    )
    .values(balance=_USERS.c.balance + sa.bindparam("amount"))
    .returning(_USERS.c.balance)
)
_LEDGER_ROW = sa.insert(table_of(LedgerEntry))

_KEYS = table_of(ApiKey)
# A request's key and its user may make model calls: checked inside the debit itself, so
# no cache in any process can admit a key that was revoked or disabled a moment ago.
_KEY_USABLE = sa.exists().where(
    _KEYS.c.id == sa.bindparam("key_id"),
    _KEYS.c.user_id == _USERS.c.id,
    _KEYS.c.enabled.is_(True),
    _KEYS.c.revoked_at.is_(None),
    sa.or_(_KEYS.c.expires_at.is_(None), _KEYS.c.expires_at > sa.bindparam("now", type_=_KEYS.c.expires_at.type)),
)
_ADMIT = (
    sa.update(_USERS)
    .where(
        _USERS.c.id == sa.bindparam("user_id"),
        _USERS.c.balance + sa.bindparam("amount") >= 0,
        _USERS.c.api_enabled.is_(True),
        _KEY_USABLE,
    )
    .values(balance=_USERS.c.balance + sa.bindparam("amount"))
    .returning(_USERS.c.balance)
)
_ADMISSIBLE = sa.select(_USERS.c.balance).where(
    _USERS.c.id == sa.bindparam("user_id"), _USERS.c.api_enabled.is_(True), _KEY_USABLE
)


def _apply(
    session: Session | sa.Connection,
    *,
    user_id: int,
    amount: int,
    kind: str,
    ref: str | None = None,
    model: str | None = None,
    note: str | None = None,
    actor_user_id: int | None = None,
    key_id: int | None = None,
    ceiling: int = _NO_CEILING,
    commit: bool = True,
) -> int | None:
    """Add `amount` (may be negative) unless the balance would drop below zero, or (with
    `key_id`) that key or its user may not make model calls.

    Returns the new balance, or None when refused. Commits.
    `session` may also be a Core Connection.
    """
    conn = _connection(session)
    if key_id is None:
        row = conn.execute(_CONDITIONAL_ADD, {"user_id": user_id, "amount": amount, "ceiling": ceiling}).first()
    else:
        row = conn.execute(_ADMIT, {"user_id": user_id, "amount": amount, "key_id": key_id, "now": utcnow()}).first()
    if row is None:
        session.rollback()
        return None
    new_balance = row[0]
    conn.execute(
        _LEDGER_ROW,
        {
            "user_id": user_id,
            "amount": amount,
            "balance_after": new_balance,
            "kind": kind,
            "ref": ref,
            "model": model,
            "note": note,
            "actor_user_id": actor_user_id,
            "created_at": utcnow(),
        },
    )
    if commit:
        session.commit()
    return new_balance


def _connection(session: Session | sa.Connection) -> sa.Connection:
    """The Core connection the statements run on, in the session's transaction: plain Core
    execution, as the ORM adds nothing to two statements on one table each."""
    return session.connection() if isinstance(session, Session) else session


@on_connection
def debit_for_request(
    session: Session | sa.Connection,
    *,
    user_id: int,
    cost: int,
    ref: str,
    model: str | None = None,
    key_id: int | None = None,
    hold: holds.HoldInfo | None = None,
) -> int:
    """Charge `cost` for request or task `ref`; returns the new balance.

    With `key_id` (every API model call) the same statement also requires that key to be
    live and enabled and its user's API access on; KeyNotUsable when not. Raises
    InsufficientCredits when the balance is short. Either way nothing changes.
    With `hold`, the hold's record (store.holds) is written in the same transaction.
    A cost of 0 writes nothing (the key is still checked).
    """
    if cost < 0:
        raise InvalidInput("cost must not be negative")
    if cost == 0:
        if key_id is None:
            return balance(session, user_id=user_id)
        row = _connection(session).execute(_ADMISSIBLE, {"user_id": user_id, "key_id": key_id, "now": utcnow()}).first()
        session.rollback()
        if row is None:
            raise _refusal(session, user_id=user_id, key_id=key_id) or NotFound("no such user")
        return row[0]
    new_balance = _apply(
        session, user_id=user_id, amount=-cost, kind=CHARGE, ref=ref, model=model, key_id=key_id, commit=hold is None
    )
    if new_balance is None:
        if key_id is not None and (refusal := _refusal(session, user_id=user_id, key_id=key_id)) is not None:
            raise refusal
        raise InsufficientCredits("Insufficient credits")
    if hold is not None:
        holds.open_hold(_connection(session), ref=ref, user_id=user_id, model=model, amount=cost, info=hold)
        session.commit()
    return new_balance


def _refusal(session: Session | sa.Connection, *, user_id: int, key_id: int) -> KeyNotUsable | None:
    """Why `key_id` may not make model calls now, or None when it may."""
    row = session.execute(
        sa.select(_KEYS.c.enabled, _KEYS.c.revoked_at, _KEYS.c.expires_at, _USERS.c.api_enabled)
        .join(_USERS, _USERS.c.id == _KEYS.c.user_id)
        .where(_KEYS.c.id == key_id, _KEYS.c.user_id == user_id)
    ).first()
    session.rollback()
    if row is None:
        return KeyNotUsable("the key does not exist", revoked=True)
    enabled, revoked_at, expires_at, api_enabled = row
    if revoked_at is not None:
        return KeyNotUsable("the key was revoked", revoked=True)
    if expires_at is not None:
        expiry = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=utcnow().tzinfo)
        if expiry <= utcnow():
            return KeyNotUsable("the key expired", revoked=True)
    if not enabled:
        return KeyNotUsable("the key is disabled", revoked=False)
    if not api_enabled:
        return KeyNotUsable("API access is disabled for this user", revoked=False)
    return None


def _rows_for(session: Session, ref: str) -> list[LedgerEntry]:
    rows = list(session.exec(select(LedgerEntry).where(col(LedgerEntry.ref) == ref)))
    session.rollback()  # end the read: SQLite cannot upgrade a read to a write safely
    return rows


def refund(session: Session, *, ref: str, note: str | None = None, unless_settled: bool = False) -> bool:
    """Give back everything charged for request or task `ref` (its hold, less any
    settlement), at most once, so a refund can never exceed what was charged.
    Returns False when nothing was charged for `ref` or it was refunded already (or, with
    `unless_settled`, settled: a call whose own process settled it was delivered).
    """
    rows = _rows_for(session, ref)
    charge = next((r for r in rows if r.kind == CHARGE), None)
    if charge is None or any(r.kind == REFUND or (unless_settled and r.kind == SETTLE) for r in rows):
        return False
    net = sum(r.amount for r in rows if r.kind in (CHARGE, SETTLE))
    try:
        refunded = _apply(
            session,
            user_id=charge.user_id,
            amount=-net,
            kind=REFUND,
            ref=ref,
            model=charge.model,
            note=note,
            commit=False,
        )
        if refunded is None:
            return False
        holds.close_hold(_connection(session), ref=ref)
        session.commit()
        return True
    except IntegrityError:  # (kind, ref) is unique: a second refund of one ref
        session.rollback()
        return False


@on_connection
def settle_hold(
    session: Session | sa.Connection, *, user_id: int, ref: str, held: int, cost: int, model: str | None = None
) -> int | None:
    """Settle request `ref`, whose hold of `held` the caller knows, at `cost` (capped at
    the hold): one `settle` row, no reads. For the request path, which knows the request
    was neither refunded nor settled; (kind, ref) being unique, a second settlement of the
    same request fails instead of paying twice. Returns the charge that stands, or None
    when the hold's record was gone: its lease ran out while the call was still served
    (a stalled process) and the reconciler took it, to settle or refund it once."""
    final = final_charge(held, cost)
    if not holds.close_hold(_connection(session), ref=ref):
        session.rollback()  # it may have been refunded already: settling too would pay twice
        return None
    _apply(
        session,
        user_id=user_id,
        amount=held - final,
        kind=SETTLE,
        ref=ref,
        model=model,
        note=f"used {format_credits(final)} of {format_credits(held)} held",
        commit=False,
    )
    session.commit()
    return final


def settle(session: Session, *, ref: str, cost: int | None, note: str | None = None, commit: bool = True) -> int | None:
    """Settle request `ref` at `cost` micro-credits (None: its whole hold), capped at its
    hold: the difference comes back in one `settle` row. Returns the charge that stands, or
    None when nothing was held for `ref` or it was settled or refunded already (nothing changes)."""
    rows = _rows_for(session, ref)
    charge = next((r for r in rows if r.kind == CHARGE), None)
    if charge is None or any(r.kind in (SETTLE, REFUND) for r in rows):
        return None
    held = -charge.amount
    final = final_charge(held, held if cost is None else cost)
    note = note or f"used {format_credits(final)} of {format_credits(held)} held"
    try:
        _apply(
            session,
            user_id=charge.user_id,
            amount=held - final,
            kind=SETTLE,
            ref=ref,
            model=charge.model,
            note=note[:500],
            commit=False,
        )
        holds.close_hold(_connection(session), ref=ref)
        if commit:
            session.commit()
    except IntegrityError:  # settled concurrently
        session.rollback()
        return None
    return final


def grant(
    session: Session,
    *,
    user_id: int,
    amount: int,
    note: str | None = None,
    actor_user_id: int | None = None,
) -> int:
    """Add (or, negative, remove) credits by hand; returns the new balance."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput("amount must be a whole number")
    if amount == 0:
        raise InvalidInput("amount must not be zero")
    if not -MAX_BALANCE <= amount <= MAX_BALANCE:
        raise InvalidInput(f"amount must be between -{MAX_BALANCE // MICRO:,} and {MAX_BALANCE // MICRO:,}")
    if note is not None and len(note) > MAX_NOTE:
        # Refused, never cut: the note says why the balance moved, and half a reason is none.
        raise InvalidInput(f"the note is {len(note):,} characters; at most {MAX_NOTE} fit")
    if session.get(User, user_id) is None:
        raise NotFound("no such user")
    session.rollback()  # end the read so the update starts its own transaction
    new_balance = _apply(
        session,
        user_id=user_id,
        amount=amount,
        kind=GRANT,
        note=note,
        actor_user_id=actor_user_id,
        ceiling=MAX_BALANCE,
    )
    if new_balance is None:
        if amount > 0:
            raise InvalidInput(f"the balance would exceed {MAX_BALANCE // MICRO:,}")
        raise InsufficientCredits("the balance would drop below zero")
    return new_balance


@reads
def balance(session: Session | sa.Connection, *, user_id: int) -> int:
    value = session.execute(sa.select(col(User.balance)).where(col(User.id) == user_id)).scalar_one_or_none()
    if value is None:
        raise NotFound("no such user")
    return value


@reads
def ledger_sum(session: Session, *, user_id: int) -> int:
    return session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(col(LedgerEntry.amount)), 0)).where(col(LedgerEntry.user_id) == user_id)
    ).scalar_one()


@reads
def ledger_page(session: Session, *, user_id: int, limit: int = 50, before_id: int | None = None) -> list[LedgerEntry]:
    """The user's ledger, newest first; pass the last id seen as `before_id` for the next page."""
    query = select(LedgerEntry).where(col(LedgerEntry.user_id) == user_id)
    if before_id is not None:
        query = query.where(col(LedgerEntry.id) < before_id)
    return list(session.exec(query.order_by(col(LedgerEntry.id).desc()).limit(limit)))
