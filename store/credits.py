"""The credit ledger: every change of a balance is one conditional update plus one row.

The balance lives on the user row so that admission is a single atomic statement
(`UPDATE … SET balance = balance - cost WHERE id = … AND balance >= cost`); the ledger
row is written in the same transaction, so the balance always equals the ledger sum.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from .db import Prepared
from .errors import InsufficientCredits, InvalidInput, NotFound
from .models import LedgerEntry, User, utcnow

GRANT, CHARGE, REFUND = "grant", "charge", "refund"


_USERS = User.__table__
# The two statements of every debit, compiled once and run on the DBAPI cursor.
_CONDITIONAL_ADD = Prepared(
    sa.update(_USERS)
    .where(_USERS.c.id == sa.bindparam("user_id"), _USERS.c.balance + sa.bindparam("amount") >= 0)
    .values(balance=_USERS.c.balance + sa.bindparam("amount"))
    .returning(_USERS.c.balance),
    write=True,
)
_LEDGER_ROW = Prepared(sa.insert(LedgerEntry.__table__), write=True)


def _apply(
    session: Session,
    *,
    user_id: int,
    amount: int,
    kind: str,
    ref: str | None = None,
    model: str | None = None,
    note: str | None = None,
    actor_user_id: int | None = None,
) -> int | None:
    """Add `amount` (may be negative) unless the balance would drop below zero.

    Returns the new balance, or None when the balance does not cover it. Commits.
    `session` may also be a Core Connection (the API's inline debit: no ORM session).
    """
    if isinstance(session, Session):
        conn = session.connection()  # begins the session's transaction
    else:
        conn = session
        if not conn.in_transaction():
            conn.begin()  # the statements below run on the DBAPI cursor: begin here, so commit() commits
    row = _CONDITIONAL_ADD.run(conn, {"user_id": user_id, "amount": amount}).fetchone()
    if row is None:
        session.rollback()
        return None
    new_balance = row[0]
    _LEDGER_ROW.run(
        conn,
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
    session.commit()
    return new_balance


def debit_for_request(
    session: Session | sa.Connection, *, user_id: int, cost: int, ref: str, model: str | None = None
) -> int:
    """Charge `cost` for request or task `ref`; returns the new balance.

    Raises InsufficientCredits (and changes nothing) when the balance is short.
    A cost of 0 changes nothing and writes no ledger row.
    """
    if cost < 0:
        raise InvalidInput("cost must not be negative")
    if cost == 0:
        return balance(session, user_id=user_id)
    new_balance = _apply(session, user_id=user_id, amount=-cost, kind=CHARGE, ref=ref, model=model)
    if new_balance is None:
        raise InsufficientCredits("Insufficient credits")
    return new_balance


def refund(session: Session, *, ref: str, note: str | None = None) -> bool:
    """Give back what was charged for request or task `ref`, at most once.

    The amount is the charge's own, so a refund can never exceed it. Returns False
    when nothing was charged for `ref` or it was refunded already (nothing changes).
    """
    charge = session.exec(
        select(LedgerEntry).where(LedgerEntry.kind == CHARGE, LedgerEntry.ref == ref)
    ).first()
    session.rollback()  # end the read: SQLite cannot upgrade a read to a write safely
    if charge is None:
        return False
    try:
        return _apply(
            session,
            user_id=charge.user_id,
            amount=-charge.amount,
            kind=REFUND,
            ref=ref,
            model=charge.model,
            note=note,
        ) is not None
    except IntegrityError:  # (kind, ref) is unique: a second refund of one ref
        session.rollback()
        return False


def grant(
    session: Session,
    *,
    user_id: int,
    amount: int,
    note: str | None = None,
    actor_user_id: int | None = None,
) -> int:
    """Add (or, negative, remove) credits by hand; returns the new balance."""
    if amount == 0:
        raise InvalidInput("amount must not be zero")
    if session.get(User, user_id) is None:
        raise NotFound("no such user")
    session.rollback()  # end the read so the update starts its own transaction
    new_balance = _apply(
        session, user_id=user_id, amount=amount, kind=GRANT, note=note, actor_user_id=actor_user_id
    )
    if new_balance is None:
        raise InsufficientCredits("the balance would drop below zero")
    return new_balance


def balance(session: Session, *, user_id: int) -> int:
    value = session.execute(sa.select(User.balance).where(User.id == user_id)).scalar_one_or_none()
    if value is None:
        raise NotFound("no such user")
    return value


def ledger_sum(session: Session, *, user_id: int) -> int:
    return session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.user_id == user_id)
    ).scalar_one()


def ledger_page(
    session: Session, *, user_id: int, limit: int = 50, before_id: int | None = None
) -> list[LedgerEntry]:
    """The user's ledger, newest first; pass the last id seen as `before_id` for the next page."""
    query = select(LedgerEntry).where(LedgerEntry.user_id == user_id)
    if before_id is not None:
        query = query.where(LedgerEntry.id < before_id)
    return list(session.exec(query.order_by(LedgerEntry.id.desc()).limit(limit)))
